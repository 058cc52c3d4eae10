"""Writing the demo atlas as a TileDB-SOMA Experiment laid out like the Census."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from chunkatlas.ingest._cell_totals import row_totals
from chunkatlas.ingest.demo._simulate import (
    _OBS_COLUMNS,
    simulate_counts,
    simulate_obs,
    simulate_var,
)
from chunkatlas.ingest.demo._spec import DemoSpec, DemoSpecError
from chunkatlas.store import atomic_directory


def _obs_schema() -> pa.Schema:
    """Return the Arrow schema of the stored ``obs`` dataframe: the simulated columns, then each
    cell's totals as the Census stores them (:mod:`chunkatlas.ingest._cell_totals`)."""
    fields = [pa.field("soma_joinid", pa.int64())]
    for name in _OBS_COLUMNS:
        kind = pa.bool_() if name == "is_primary_data" else pa.large_string()
        fields.append(pa.field(name, kind))
    fields += [pa.field("raw_sum", pa.float64()), pa.field("nnz", pa.int64())]
    return pa.schema(fields)


def _var_schema() -> pa.Schema:
    """Return the Arrow schema of the stored ``var`` dataframe."""
    return pa.schema(
        [
            pa.field("soma_joinid", pa.int64()),
            pa.field("feature_id", pa.large_string()),
            pa.field("feature_name", pa.large_string()),
            pa.field("feature_length", pa.int64()),
        ]
    )


def _frame_table(frame: pd.DataFrame, start: int, schema: pa.Schema) -> pa.Table:
    """Convert ``frame`` to an Arrow table with ``soma_joinid`` counting from ``start``."""
    data = frame.reset_index(drop=True).assign(
        soma_joinid=np.arange(start, start + len(frame), dtype=np.int64)
    )
    return pa.Table.from_pandas(data, schema=schema, preserve_index=False)


def _coo_table(counts: sp.csr_matrix, row_offset: int) -> pa.Table:
    """Convert ``counts`` to a SOMA COO table with rows shifted by ``row_offset``."""
    coo = counts.tocoo()
    return pa.table(
        {
            "soma_dim_0": pa.array(coo.row.astype(np.int64) + row_offset),
            "soma_dim_1": pa.array(coo.col.astype(np.int64)),
            "soma_data": pa.array(coo.data.astype(np.float32)),
        }
    )


def _local_path(uri: str) -> str:
    """Return the filesystem path of a local ``uri``; refuse remote URIs."""
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    elif "://" in uri:
        raise DemoSpecError(
            f"uri={uri!r} is not supported; write_demo_atlas writes local paths only"
        )
    return os.path.abspath(uri)


def _write_experiment(path: str, spec: DemoSpec) -> dict[str, Any]:
    """Write the whole experiment at ``path`` (which must not exist)."""
    import tiledbsoma

    obs = simulate_obs(spec)
    var = simulate_var(spec)
    nnz = 0
    with tiledbsoma.Experiment.create(path) as exp:
        exp.metadata["chunkatlas_demo_spec"] = json.dumps(asdict(spec))
        obs_df = exp.add_new_dataframe("obs", schema=_obs_schema(), domain=[(0, spec.n_cells - 1)])
        ms = exp.add_new_collection("ms")
        rna = ms.add_new_collection("RNA", tiledbsoma.Measurement)
        var_df = rna.add_new_dataframe("var", schema=_var_schema(), domain=[(0, spec.n_genes - 1)])
        var_df.write(_frame_table(var, 0, _var_schema()))
        x = rna.add_new_collection("X")
        raw = x.add_new_sparse_ndarray("raw", type=pa.float32(), shape=(spec.n_cells, spec.n_genes))
        for start in range(0, spec.n_cells, spec.block_cells):
            stop = min(start + spec.block_cells, spec.n_cells)
            # A block's counts come first: its obs rows hold each cell's totals, as the Census's do.
            counts = simulate_counts(spec, obs, start, stop)
            raw_sum, cell_nnz = row_totals(counts)
            rows = obs.iloc[start:stop].assign(raw_sum=raw_sum, nnz=cell_nnz)
            obs_df.write(_frame_table(rows, start, _obs_schema()))
            raw.write(_coo_table(counts, start))
            nnz += counts.nnz
    per_tissue = obs["tissue_general"].value_counts()
    return {
        "n_cells": spec.n_cells,
        "n_genes": spec.n_genes,
        "nnz": int(nnz),
        "cells_per_tissue_general": {t: int(per_tissue.get(t, 0)) for t in spec.tissues},
        "n_primary": int(obs["is_primary_data"].sum()),
    }


def write_demo_atlas(uri: str, spec: DemoSpec) -> dict[str, Any]:
    """Write a Census-shaped demo TileDB-SOMA Experiment at ``uri``.

    The experiment is built in a hidden temporary sibling of ``uri`` and renamed
    into place once complete (:func:`chunkatlas.store._write.atomic_directory`), so
    ``uri`` never holds a partial experiment; the temporary is removed if
    writing fails.

    Parameters
    ----------
    uri : str
        Local path (or ``file://`` URI) of the experiment; must not exist.
    spec : DemoSpec
        Atlas description; cells are generated and written ``block_cells`` at
        a time.

    Returns
    -------
    dict
        ``n_cells``, ``n_genes``, ``nnz`` (stored non-zeros of ``X['raw']``),
        ``cells_per_tissue_general`` (tissue -> number of cells) and
        ``n_primary`` (cells with ``is_primary_data`` True).

    Raises
    ------
    ChunkatlasError
        If ``uri`` already exists.
    DemoSpecError
        If ``uri`` is not local (also a ``ValueError``).
    """
    path = _local_path(uri)
    with atomic_directory(path) as tmp:
        return _write_experiment(str(tmp), spec)
