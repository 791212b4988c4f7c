"""Archives from where fleets fetch them: HTTP(S) servers and OCI registries.

This layer sits between :mod:`portpack.archive` and :mod:`portpack.install`: it may
import the basics, :mod:`portpack.conda` and :mod:`portpack.archive`, and only the
standard library (plus zstandard), because ``portpack unpack https://...`` and
``oci://...`` run on targets without pip.
"""
