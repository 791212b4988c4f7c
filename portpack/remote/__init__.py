"""Archives from where fleets fetch them: HTTP(S) and OCI registries, on the standard library."""
