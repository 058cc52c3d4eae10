"""What a run was made from: its software versions (its config, secrets masked, and hash:
:func:`chunkatlas.settings.run_provenance`)."""

from __future__ import annotations

import platform
from importlib.metadata import distributions

import pandas as pd


def software_versions() -> pd.DataFrame:
    """Every installed Python distribution with its version, and Python itself, sorted."""
    rows = {(d.metadata["Name"] or "").lower(): d.version for d in distributions()}
    rows.pop("", None)
    rows["python"] = platform.python_version()
    table = pd.DataFrame(sorted(rows.items()), columns=["package", "version"])
    return table
