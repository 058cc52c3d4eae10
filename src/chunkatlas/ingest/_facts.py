"""What a source holds, read from its metadata before any job: the genes of the X the analysis
will read, the obs columns, the cells of each tissue where the metadata tells, and a sample of
X's stored values (its first stored chunk: counts or not).  X itself is never read whole.

The config's source keys (tissues, ``tissue_column``, ``layer``, ``use_raw``, ``measurement``,
``var_index``) are checked against it here, one line each, with the same checks fetch makes
(:mod:`._names`); the analysis's parameters are checked against the facts by
:meth:`chunkatlas.analysis.AnalysisParams.check_data`.  A source that cannot be reached is one
line too."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chunkatlas.errors import ChunkatlasError
from chunkatlas.ingest._fetch import SourceSettings, build_obs_filter, soma_context
from chunkatlas.ingest._names import (
    listed,
    refuse_layer_and_raw,
    refuse_missing,
    refuse_missing_var_index,
)
from chunkatlas.store import RemoteSettings, is_remote, redact

if TYPE_CHECKING:
    from chunkatlas.ingest.demo import DemoSpec

#: Stored values sampled to tell counts from other values when a matrix keeps its values in
#: one contiguous block (HDF5 without chunks); otherwise its first stored chunk, at most
#: MAX_SAMPLE_VALUES values.
SAMPLE_VALUES = 1 << 16
MAX_SAMPLE_VALUES = 1 << 22
#: Cells of a SOMA source whose X values are sampled.
SOMA_SAMPLE_CELLS = 100
SCANPY_PREFIX = "scanpy:"
#: scanpy's datasets that ship inside scanpy, by file (the others download when fetched).
SCANPY_SHIPPED = {"pbmc68k_reduced": "datasets/10x_pbmc68k_reduced.h5ad"}


class SourceUnreachable(ChunkatlasError):
    """A source that could not be read over the network (one line: the error's type and first
    line): a run stops there; a dry run may plan without it."""


@dataclass(frozen=True)
class SourceFacts:
    """What a source holds, as far as its metadata tells.

    ``matrix`` names the matrix the analysis will read as X (``X``, ``layers['counts']`` or
    ``raw.X``); ``n_vars`` is its genes.  ``cells`` maps each configured tissue to its cells
    where the metadata tells them (None: not known before fetching).  ``sample`` holds some of
    the matrix's stored values (None: counts by construction, or not read).
    """

    where: str
    n_vars: int
    obs_columns: tuple[str, ...]
    matrix: str = "X"
    cells: Mapping[str, int] | None = None
    sample: np.ndarray | None = dataclasses.field(default=None, repr=False)

    @property
    def fewest_cells(self) -> int | None:
        """The cells of the smallest tissue, or None where not known."""
        return min(self.cells.values()) if self.cells else None

    @property
    def described(self) -> str:
        """The matrix and the source, for messages: ``X in data/cells.h5ad``."""
        return f"{self.matrix} in {self.where}"


def inspect_source(
    source: SourceSettings,
    tissues: Sequence[str],
    *,
    demo: DemoSpec | None = None,
    remote: RemoteSettings | None = None,
) -> SourceFacts | None:
    """The facts of ``source`` (its ``tissues``), its settings checked against them; a remote
    AnnData source is read with ``remote`` (retries, timeout; its storage options are the
    source's).

    The demo atlas (``demo``, with a SOMA ``source``) is described by its spec (it is built by a
    job); a scanpy dataset that downloads is not inspected (None: checked when fetched).

    Raises
    ------
    ChunkatlasError
        One line: a tissue, column, layer or raw the source lacks, or a source that cannot be
        read (not found, not reachable, not an AnnData store or a SOMA Experiment).
    """
    tissues = list(tissues)
    if demo is not None and source.kind == "soma":
        return demo_facts(source, tissues, demo)
    if source.kind == "soma":
        return soma_facts(source, tissues)
    uri = source.uri
    if uri.startswith(SCANPY_PREFIX):
        shipped = shipped_scanpy_file(uri.removeprefix(SCANPY_PREFIX))
        if shipped is None:
            return None
        source = dataclasses.replace(source, uri=shipped)
    remote = dataclasses.replace(remote or RemoteSettings(), storage_options=source.storage_options)
    facts = anndata_facts(source, tissues, remote)
    return dataclasses.replace(facts, where=redact(uri))


def shipped_scanpy_file(name: str) -> str | None:
    """The file of scanpy dataset ``name`` where it ships inside scanpy (no scanpy import)."""
    spec = importlib.util.find_spec("scanpy")
    if name not in SCANPY_SHIPPED or spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0], SCANPY_SHIPPED[name])
    return str(path) if path.exists() else None


def demo_facts(source, tissues: Sequence[str], spec: DemoSpec) -> SourceFacts:
    """The demo atlas, from its spec: its tissues, genes, columns and layer (counts)."""
    from chunkatlas.ingest.demo import STORED_OBS_COLUMNS, STORED_VAR_COLUMNS

    where = f"the demo atlas {source.uri}"
    refuse_missing("measurement", source.measurement, ["RNA"], where, "source.measurement")
    refuse_missing("X layer", source.layer or "raw", ["raw"], where, "source.layer")
    if source.var_index:
        refuse_missing_var_index(source.var_index, STORED_VAR_COLUMNS)
    for tissue in tissues:
        refuse_missing("tissue", tissue, spec.tissues, where, "tissues")
    return SourceFacts(where, spec.n_genes, tuple(STORED_OBS_COLUMNS))


def soma_facts(source, tissues: Sequence[str]) -> SourceFacts:
    """A TileDB-SOMA Experiment: its measurement, X layer and var column checked, n_vars from
    var's count, obs columns from obs's schema, and the X values of its first cells."""
    import tiledbsoma

    where = redact(source.uri)
    layer = source.layer or "raw"
    for tissue in tissues:
        build_obs_filter(source.obs_filter, tissue)  # a template and names it can take
    try:
        experiment = tiledbsoma.Experiment.open(
            source.uri, context=soma_context(source.tiledb_config)
        )
    except tiledbsoma.DoesNotExistError:
        raise ChunkatlasError(f"SOMA experiment not found: {where} (source.uri)") from None
    except Exception as err:  # noqa: BLE001 - whatever the network answers: one line
        raise unreachable(where, err) from None
    with experiment:
        measurements = experiment.ms.keys()
        refuse_missing("measurement", source.measurement, measurements, where, "source.measurement")
        measurement = experiment.ms[source.measurement]
        refuse_missing("X layer", layer, measurement.X.keys(), where, "source.layer")
        var_columns = measurement.var.schema.names
        if source.var_index:
            refuse_missing_var_index(source.var_index, var_columns)
        obs_columns = tuple(experiment.obs.schema.names)
        n_vars = int(measurement.var.count)
        read = measurement.X[layer].read(coords=(slice(0, SOMA_SAMPLE_CELLS - 1),))
        sample = np.concatenate(
            [t.column("soma_data").to_numpy() for t in read.tables()] or [np.zeros(0)]
        )
    return SourceFacts(where, n_vars, with_totals(obs_columns), f"X layer {layer!r}", None, sample)


def with_totals(columns: Iterable[str]) -> tuple[str, ...]:
    """A source's obs columns as the fetched stores have them: with each cell's totals."""
    columns = tuple(columns)
    return columns + tuple(c for c in ("raw_sum", "nnz") if c not in columns)


def anndata_facts(
    source, tissues: Sequence[str], remote: RemoteSettings | None = None
) -> SourceFacts:
    """An AnnData source (.h5ad or .zarr, local or at a URL): the matrix taken as X (X, a layer
    or raw.X), its genes and first stored chunk, obs columns, and with ``tissue_column`` the
    cells of each tissue."""
    refuse_layer_and_raw(source.layer, source.use_raw)
    where = redact(source.uri)
    with ExitStack() as stack:
        root = open_anndata_root(source.uri, remote, stack)
        if source.layer is not None:
            layers = list(root["layers"].keys()) if "layers" in root else []
            refuse_missing("layer", source.layer, layers, where, "source.layer")
            elem, matrix = root["layers"][source.layer], f"layers[{source.layer!r}]"
        elif source.use_raw:
            if "raw" not in root or "X" not in root["raw"]:
                raise ChunkatlasError(f"{where} has no .raw to take X from (source.use_raw)")
            elem, matrix = root["raw"]["X"], "raw.X"
        else:
            if "X" not in root:
                raise ChunkatlasError(f"AnnData source has no X: {where}")
            elem, matrix = root["X"], "X"
        n_obs, n_vars = matrix_shape_of(elem)
        columns = obs_column_names(root["obs"])
        cells = {tissue: n_obs for tissue in tissues}
        if source.tissue_column is not None:
            refuse_missing(
                "obs column", source.tissue_column, columns, where, "source.tissue_column"
            )
            cells = tissue_cells(root["obs"][source.tissue_column], tissues, where, source)
        sample = first_stored_values(elem)
    return SourceFacts(where, n_vars, with_totals(columns), matrix, cells, sample)


def open_anndata_root(uri: str, remote: RemoteSettings | None, stack: ExitStack):
    """The root group of an AnnData .h5ad (h5py) or zarr store (zarr), opened for reading its
    metadata; one line for a source that is missing, unreachable or not AnnData."""
    where = redact(uri)
    if not is_remote(uri) and not os.path.exists(uri):
        raise ChunkatlasError(f"config source.uri: {uri!r} does not exist")
    try:
        if uri.rstrip("/").endswith((".h5ad", ".h5")):
            return open_h5_root(uri, remote, stack)
        if is_remote(uri):
            from chunkatlas.store import open_remote_group

            try:
                group, _ = open_remote_group(uri, remote, require_manifest=False)
            except ChunkatlasError as err:  # the manifest's reads, retried, failed
                if type(err) is ChunkatlasError and " failed after " in str(err):
                    raise SourceUnreachable(f"{err} (source.uri)") from None
                raise
            return group
        from chunkatlas.store import open_anndata_group

        return open_anndata_group(uri)
    except ChunkatlasError:
        raise
    except FileNotFoundError as err:  # fsspec says so of an HTTP server it cannot reach too
        if err.__cause__ is not None:
            raise unreachable(where, err.__cause__) from None
        raise ChunkatlasError(f"source not found: {where} (source.uri)") from None
    except Exception as err:  # noqa: BLE001 - whatever the network answers: one line
        raise unreachable(where, err) from None


def open_h5_root(uri: str, remote: RemoteSettings | None, stack: ExitStack):
    import fsspec
    import h5py

    from chunkatlas.store import storage_options_for

    options = storage_options_for(uri, remote or RemoteSettings()) if is_remote(uri) else {}
    handle = stack.enter_context(fsspec.open(uri, "rb", **options))
    try:
        root = stack.enter_context(h5py.File(handle, "r"))
    except OSError:
        raise ChunkatlasError(f"not an HDF5 file: {redact(uri)} (source.uri)") from None
    if "obs" not in root:
        raise ChunkatlasError(f"not an AnnData h5ad (no obs): {redact(uri)} (source.uri)")
    return root


def unreachable(where: str, err: BaseException) -> SourceUnreachable:
    """One line for a source that could not be read: the error's type and first line."""
    detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
    what = type(err).__name__ + (f": {detail}" if detail else "")
    return SourceUnreachable(f"cannot read the source {where} (source.uri): {redact(what)}")


def matrix_shape_of(elem) -> tuple[int, int]:
    """Shape of a stored matrix (sparse: a group with a shape attribute; dense: an array)."""
    from chunkatlas.store import matrix_shape

    n_obs, n_vars = matrix_shape(elem)
    return int(n_obs), int(n_vars)


def obs_column_names(obs) -> list[str]:
    """obs's columns from its attributes (an AnnData dataframe), without reading them."""
    order = obs.attrs.get("column-order")
    if order is None and getattr(obs, "dtype", None) is not None:  # h5ad of anndata < 0.7
        return [n for n in obs.dtype.names if n != "index"]
    names = np.atleast_1d(order if order is not None else [])
    return [c.decode() if isinstance(c, bytes) else str(c) for c in names]


def tissue_cells(column, tissues: Sequence[str], where: str, source) -> dict[str, int]:
    """The cells of each tissue in obs column ``column`` (one element, read alone); a tissue
    without cells is refused, naming the column's values."""
    import pandas as pd
    from anndata.io import read_elem

    values = pd.Series(read_elem(column)).astype(str)
    counts = values.value_counts()
    for tissue in tissues:
        if counts.get(tissue, 0) == 0:
            raise ChunkatlasError(
                f"tissue {tissue!r} matches no cells in {where} (filter: "
                f"{source.tissue_column} == {tissue!r}); {source.tissue_column} has: "
                f"{listed(sorted(counts.index))}"
            )
    return {tissue: int(counts[tissue]) for tissue in tissues}


def first_stored_values(elem) -> np.ndarray:
    """Values of a stored matrix as stored: its first stored chunk (sparse: of ``data``)."""
    from chunkatlas.store import is_sparse

    array = elem["data"] if is_sparse(elem) else elem
    chunks = getattr(array, "chunks", None)
    if not array.shape or 0 in array.shape:
        return np.zeros(0)
    if chunks:
        region = tuple(slice(0, c) for c in chunks)
    else:  # one contiguous block: the first SAMPLE_VALUES values, whole rows
        rows = max(1, SAMPLE_VALUES // int(np.prod(array.shape[1:], dtype=np.int64) or 1))
        region = (slice(0, rows),)
    values = np.asarray(array[region]).ravel()
    return values[:MAX_SAMPLE_VALUES]
