"""RQ entry points: importable top-level functions with small JSON arguments."""
