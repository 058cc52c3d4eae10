"""Helpers the tests share: the in-memory oracle, stores on disk, a misbehaving HTTP server,
workflow runs, an external Dask cluster and remote reads."""
