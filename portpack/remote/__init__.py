"""Remote sources and destinations of archives: OCI registries (standard library only).

This layer sits between :mod:`portpack.archive` and :mod:`portpack.install`: it may
import the basics, :mod:`portpack.conda` and :mod:`portpack.archive`, and only the
standard library (plus zstandard), because ``portpack unpack oci://...`` runs on
targets without pip.
"""
