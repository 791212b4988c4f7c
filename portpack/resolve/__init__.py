"""From specs and manifests to a lockfile: manifests, the lockfile, the solver."""
