"""Rule params that decide how a job runs rather than what it writes."""

from __future__ import annotations

import pickle


class Untracked:
    """A rule param its job gets but Snakemake neither records nor compares: Snakemake keeps only
    params of built-in types in its metadata and re-runs a rule when one changes.  For what
    decides how a job runs, not what it writes (Dask settings, retries, credentials, the config
    hash the outputs record): no re-run when it changes, and no secret in ``.snakemake/``.

    The value stays pickled until the job reads ``.value``: Snakemake's preamble unpickles the
    params before the script's first line, and would otherwise import the value's modules (the
    analysis, zarr, Dask: a second or more) before the script can make a Ctrl-C one line."""

    def __init__(self, value: object) -> None:
        self._pickled = pickle.dumps(value)

    @property
    def value(self) -> object:
        return pickle.loads(self._pickled)
