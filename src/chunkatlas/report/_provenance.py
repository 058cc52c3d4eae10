"""What a run was made from: its configuration (secrets masked), hash and software versions."""

from __future__ import annotations

import copy
import platform
from importlib.metadata import distributions

import pandas as pd

from chunkatlas._version import __version__
from chunkatlas.config import config_hash

SECRET_SECTIONS = ("tiledb_config", "storage_options")


def public_config(config: dict) -> dict:
    """A copy of ``config`` with every value under tiledb_config/storage_options masked."""

    def mask(value):
        if isinstance(value, dict):
            return {key: mask(inner) for key, inner in value.items()}
        return "***"

    public = copy.deepcopy(config)
    source = public.get("source", {})
    for section in SECRET_SECTIONS:
        if section in source:
            source[section] = mask(source[section])
    return public


def run_record(config: dict) -> dict:
    """The config as run, its hash and the chunkatlas version: recorded beside the results."""
    public = public_config(config)
    return {"chunkatlas_version": __version__, "config_hash": config_hash(public), "config": public}


def software_versions() -> pd.DataFrame:
    """Every installed Python distribution with its version, and Python itself, sorted."""
    rows = {(d.metadata["Name"] or "").lower(): d.version for d in distributions()}
    rows.pop("", None)
    rows["python"] = platform.python_version()
    table = pd.DataFrame(sorted(rows.items()), columns=["package", "version"])
    return table
