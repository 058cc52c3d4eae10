"""Which layout to write an atlas in, for the way its users read it: ``chunkatlas advise``.

A study run leaves ``cost_model.json``: the cost model's coefficients per backend (seconds from
requests, bytes and decoding, :mod:`._fit`), what each codec stores and costs to decode
per stored value, and the requests its reader makes beyond a layout's ranges
(:mod:`._traffic`).  From an atlas's size alone, every candidate layout's requests, bytes and
objects are predicted per access pattern, and its seconds from the coefficients.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from importlib.resources import files
from pathlib import Path

import pandas as pd

from chunkatlas._version import __version__
from chunkatlas.errors import ChunkatlasError
from chunkatlas.model._fit import BackendFit, CostFit
from chunkatlas.model._traffic import (
    X_PATTERNS,
    Atlas,
    Encoding,
    Layout,
    calibrate,
    chunk_values,
    encodings,
    predict_traffic,
)

#: The cost model shipped with the package: fitted on config/geometry.yaml's study run of the
#: demo atlas's lung (its "origin" says so).
REFERENCE_MODEL = "reference_cost_model.json"
CELL_CHUNKS = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
GENE_CHUNKS = (1, 5, 20, 50, 200, 1_000)
SHARDS = (1, 4, 16, 64)
#: The largest stored object a layout may have: the model's bytes cost is measured on objects
#: of a few MB read in parallel, and a few huge objects leave a reader one stream each.
MAX_OBJECT_BYTES = 256e6


@dataclass(frozen=True)
class CostModel:
    """Everything ``advise`` needs from a study run, as written to ``cost_model.json``."""

    fit: CostFit
    encodings: Mapping[tuple[str, str], Encoding]
    extra_requests: Mapping[tuple[str, str, bool], int]
    origin: str  # where the coefficients come from, for the reader of the advice

    def to_json(self) -> str:
        return json.dumps(
            {
                "chunkatlas_version": __version__,
                "origin": self.origin,
                "backends": {b: asdict(f) for b, f in self.fit.backends.items()},
                "encodings": [
                    {"orientation": o, "codec": c, **asdict(e)}
                    for (o, c), e in sorted(self.encodings.items())
                ],
                "extra_requests": [
                    {"pattern": p, "orientation": o, "sharded": s, "requests": n}
                    for (p, o, s), n in sorted(self.extra_requests.items())
                ],
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> CostModel:
        try:
            raw = json.loads(text)
            if "note" in raw:  # the study run could not fit one
                raise ChunkatlasError(f"{where} holds no cost model: {raw['note']}")
            backend_fields = {f.name for f in fields(BackendFit)}
            fit = CostFit(
                {
                    b: BackendFit(**{k: v for k, v in f.items() if k in backend_fields})
                    for b, f in raw["backends"].items()
                }
            )
            found = {
                (e["orientation"], e["codec"]): Encoding(
                    e["bytes_per_value"], e["bytes_per_pointer"], e["decode_seconds_per_byte"]
                )
                for e in raw["encodings"]
            }
            extra = {
                (e["pattern"], e["orientation"], bool(e["sharded"])): int(e["requests"])
                for e in raw["extra_requests"]
            }
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ChunkatlasError(f"{where} is not a chunkatlas cost model ({err!r})") from None
        return cls(fit, found, extra, raw.get("origin", where))


def build_cost_model(
    remote: pd.DataFrame, summary: pd.DataFrame, fit: CostFit, origin: str
) -> CostModel:
    """The cost model of a study run: its fit, and its stores' encodings and reader."""
    found = encodings(remote, summary)
    return CostModel(fit, found, calibrate(remote, summary, found), origin)


def load_cost_model(path: str | os.PathLike | None = None) -> CostModel:
    """``path`` (a study run's ``cost_model.json``), or the reference model shipped."""
    if path is None:
        text = files("chunkatlas.model").joinpath(REFERENCE_MODEL).read_text()
        return CostModel.from_json(text, "the reference cost model")
    where = Path(path)
    if not where.is_file():
        raise ChunkatlasError(
            f"cost model not found: {where} (a study run writes results/RUN/cost_model.json)"
        )
    return CostModel.from_json(where.read_text(), str(where))


def candidate_layouts(atlas: Atlas, codecs: Sequence[str]) -> list[Layout]:
    """Layouts worth predicting for ``atlas``: chunk sizes that fit it, every shard setting."""
    cells = [c for c in CELL_CHUNKS if c <= atlas.n_obs] or [atlas.n_obs]
    genes = [g for g in GENE_CHUNKS if g <= atlas.n_vars] or [atlas.n_vars]
    return [
        Layout(orientation, chunk, shard, codec)
        for orientation, chunks in (("cells", cells), ("genes", genes))
        for chunk in chunks
        for shard in SHARDS
        for codec in codecs
    ]


def predictions(
    atlas: Atlas, model: CostModel, backend: str, patterns: Sequence[str]
) -> pd.DataFrame:
    """Every candidate layout's predicted requests, bytes, objects and seconds per pattern."""
    if backend not in model.fit.backends:
        raise ChunkatlasError(
            f"backend {backend!r} is not in the cost model ({model.origin}); it has: "
            f"{', '.join(model.fit.backends)}"
        )
    codecs = sorted({codec for _, codec in model.encodings})
    rows = []
    for layout in candidate_layouts(atlas, codecs):
        encoding = model.encodings.get((layout.orientation, layout.codec))
        if encoding is None:  # the study wrote no store of this orientation and codec
            continue
        if chunk_values(atlas, layout) * layout.shard * encoding.bytes_per_value / 2 > (
            MAX_OBJECT_BYTES
        ):
            continue
        for pattern in patterns:
            extra = model.extra_requests.get((pattern, layout.orientation, layout.shard > 1), 0)
            traffic = predict_traffic(atlas, layout, pattern, encoding, extra)
            x_bytes = encoding.x_bytes(atlas, layout.orientation)
            rows.append(
                {
                    **asdict(layout),
                    "pattern": pattern,
                    "requests": traffic.requests,
                    "bytes": traffic.bytes,
                    "objects": traffic.objects,
                    "x_bytes": x_bytes,
                    "store_bytes": x_bytes,
                    "decode_seconds": encoding.decode_seconds_per_byte * x_bytes,
                }
            )
    table = pd.DataFrame(rows)
    table["seconds"] = model.fit[backend].predict(table)
    return table


def best_per_pattern(table: pd.DataFrame) -> pd.DataFrame:
    """The fastest layout per pattern; ties go to fewer objects, then fewer bytes."""
    ranked = table.assign(rounded=table["seconds"].round(9)).sort_values(
        ["pattern", "rounded", "objects", "bytes", "orientation", "chunk", "shard", "codec"],
        kind="stable",
    )
    best = ranked.groupby("pattern", sort=False).head(1).drop(columns="rounded")
    order = {p: i for i, p in enumerate(X_PATTERNS)}
    return best.sort_values("pattern", key=lambda s: s.map(order)).reset_index(drop=True)


@dataclass(frozen=True)
class MixAdvice:
    """The best single layout for a mix of patterns, and the best pair (one per orientation)."""

    single: Layout
    single_seconds: float
    pair: tuple[Layout, Layout]
    pair_seconds: float
    second_copy_bytes: float


def advise_mix(table: pd.DataFrame) -> MixAdvice:
    """For the patterns of ``table`` read equally often: the layout with the least total
    seconds, and the pair of layouts (cell-major and gene-major copies; each read from the one
    that serves it faster) with the least, and what the second copy adds in bytes."""
    keys = ["orientation", "chunk", "shard", "codec"]
    totals = table.groupby(keys)["seconds"].sum()
    totals = totals.loc[
        totals.round(9).sort_values(kind="stable").index
    ]  # stable: ties keep grid order
    single = Layout(*totals.index[0])
    best_pair, best_seconds = None, math.inf
    per_layout = table.set_index([*keys, "pattern"])["seconds"]
    cells = [k for k in totals.index if k[0] == "cells"]
    genes = [k for k in totals.index if k[0] == "genes"]
    patterns = sorted(set(table["pattern"]))
    for a in cells[:20]:  # the 20 best of each orientation hold every good pair
        for b in genes[:20]:
            seconds = sum(min(per_layout[(*a, p)], per_layout[(*b, p)]) for p in patterns)
            if seconds < best_seconds:
                best_pair, best_seconds = (Layout(*a), Layout(*b)), seconds
    if best_pair is None:
        raise ChunkatlasError("the cost model knows one orientation only: no pair to advise")
    other = best_pair[1] if single.orientation == "cells" else best_pair[0]
    copy = table[
        (table["orientation"] == other.orientation)
        & (table["chunk"] == other.chunk)
        & (table["codec"] == other.codec)
    ]
    return MixAdvice(
        single, float(totals.iloc[0]), best_pair, best_seconds, float(copy["x_bytes"].iloc[0])
    )


SOURCE_KINDS = "an AnnData .zarr store or .h5ad file, or a TileDB-SOMA Experiment"


def atlas_of(source: str, tissue: str | None = None, obs_filter: str | None = None) -> Atlas:
    """The size of an atlas, from metadata only: an AnnData zarr store or h5ad file (X's shape,
    and its stored values: a sparse X's ``data``, every value of a dense X, whose stores keep it
    dense), or a TileDB-SOMA Experiment (its raw X, or one tissue's share of it with ``tissue``
    and the Census ``obs_filter``).

    Raises
    ------
    ChunkatlasError
        One line naming the source and what is allowed: it is missing, it is no AnnData store
        nor SOMA Experiment, ``tissue`` is given for an AnnData source or has no cells.
    """
    from chunkatlas.store import is_remote

    where = str(source).rstrip("/")
    anndata = where.endswith((".h5ad", ".zarr"))
    if anndata and tissue is not None:
        raise ChunkatlasError(
            f"--tissue {tissue!r}: {where} is an AnnData store, and --tissue selects a tissue of "
            "a SOMA Experiment; advise reads the whole AnnData store (fetch one tissue of it "
            "first with chunkatlas fetch --tissue-column COLUMN)"
        )
    if not is_remote(where) and not os.path.exists(where):
        raise ChunkatlasError(f"store not found: {where} ({SOURCE_KINDS})")
    if where.endswith(".h5ad"):
        return _h5ad_atlas(where)
    if where.endswith(".zarr"):
        from chunkatlas.store import open_anndata_group

        return _matrix_atlas(open_anndata_group(where)["X"], where)
    return _soma_atlas(where, tissue, obs_filter)


def _h5ad_atlas(where: str) -> Atlas:
    import h5py

    from chunkatlas.store import is_remote

    if is_remote(where):
        raise ChunkatlasError(
            f"{where}: advise reads a local .h5ad; fetch it first "
            f"(chunkatlas fetch {where} all {Path(where).stem}.zarr) or give its size with --cells"
        )
    try:
        handle = h5py.File(where, "r")
    except OSError as err:
        raise ChunkatlasError(f"{where} is not an h5ad file (HDF5: {err})") from None
    with handle:
        if "X" not in handle:
            if handle.attrs.get("encoding-type") != "anndata":
                raise ChunkatlasError(f"{where} is an HDF5 file but no AnnData (h5ad)")
            raise ChunkatlasError(f"{where} has no X (advise sizes an atlas by its X)")
        return _matrix_atlas(handle["X"], where)


def _matrix_atlas(x, where: str) -> Atlas:
    """The atlas of a stored X (zarr or HDF5), sparse (a group) or dense (an array)."""
    from chunkatlas.store import is_sparse, matrix_shape

    try:
        n_obs, n_vars = (int(n) for n in matrix_shape(x))
    except (KeyError, TypeError, ValueError):
        raise ChunkatlasError(f"X of {where} is not a 2-D matrix AnnData reads") from None
    if n_obs == 0 or n_vars == 0:
        raise ChunkatlasError(
            f"X of {where} is empty ({n_obs} cells x {n_vars} genes); give its size with --cells"
        )
    if is_sparse(x):
        return Atlas(n_obs, n_vars, int(x["data"].shape[0]))
    return Atlas(n_obs, n_vars, n_obs * n_vars, dense=True)  # a dense store holds every value


def _soma_atlas(uri: str, tissue: str | None, obs_filter: str | None) -> Atlas:
    import tiledbsoma

    from chunkatlas.ingest import DEFAULT_OBS_FILTER, build_obs_filter

    try:
        experiment = tiledbsoma.Experiment.open(uri)
    except Exception as err:  # tiledbsoma raises several types for "not an experiment"
        raise ChunkatlasError(
            f"{uri} is not an AnnData store (.zarr, .h5ad) nor a SOMA Experiment "
            f"({type(err).__name__}); advise reads {SOURCE_KINDS}"
        ) from None
    with experiment:
        if "RNA" not in experiment.ms or "raw" not in experiment.ms["RNA"].X:
            raise ChunkatlasError(f"SOMA Experiment {uri} has no ms['RNA'].X['raw'] to size")
        measurement = experiment.ms["RNA"]
        x = measurement.X["raw"]
        n_total, n_vars = x.shape[0], measurement.var.count
        n_obs = n_total
        if tissue is not None:
            template = obs_filter or DEFAULT_OBS_FILTER
            query = build_obs_filter(template, tissue)
            table = experiment.obs.read(value_filter=query, column_names=["soma_joinid"])
            n_obs = len(table.concat())
            if n_obs == 0:
                raise ChunkatlasError(
                    f"--tissue {tissue!r} has no cells in {uri} ({query})"
                    + _tissues_of(experiment, template)
                )
        nnz = round(x.nnz * n_obs / max(n_total, 1))
    if n_obs == 0:
        raise ChunkatlasError(f"SOMA Experiment {uri} has no cells; give a size with --cells")
    return Atlas(int(n_obs), int(n_vars), int(nnz))


def _tissues_of(experiment, template: str) -> str:
    """The tissues an obs filter on ``tissue_general`` allows (the Census and the demo have it)."""
    column = "tissue_general"
    if f"{column} ==" not in template or column not in experiment.obs.schema.names:
        return ""
    values = experiment.obs.read(column_names=[column]).concat()[column].to_pylist()
    tissues = sorted({str(v) for v in values if v is not None})
    more = f" and {len(tissues) - 30} more" if len(tissues) > 30 else ""
    return f"; tissues: {', '.join(tissues[:30])}{more}"


def advice_text(
    atlas: Atlas, model: CostModel, backend: str, patterns: Sequence[str], source: str
) -> str:
    """What ``chunkatlas advise`` prints: the atlas and the model, then per pattern the layout
    with its predicted costs and the command that writes it from ``source``, then the mix."""
    table = predictions(atlas, model, backend, patterns)
    values = (
        f"X dense: all {count_text(atlas.nnz)} values stored"
        if atlas.dense
        else f"{count_text(atlas.nnz)} stored values ({atlas.nnz / atlas.n_obs:,.0f} per cell)"
    )
    lines = [
        f"{count_text(atlas.n_obs)} cells x {count_text(atlas.n_vars)} genes, {values}, read "
        f"over {backend}; coefficients from {model.origin}",
        model.fit[backend].describe(),
    ]
    dest = Path(source).stem + "-{}.zarr"
    for row in best_per_pattern(table).itertuples():
        layout = Layout(row.orientation, row.chunk, row.shard, row.codec)
        lines.append(
            f"\n{row.pattern}: {layout.describe()}\n  predicted {count_text(row.requests)} "
            f"requests, {size_text(row.bytes)}, {duration_text(row.seconds)}; "
            f"{count_text(row.objects)} objects of X\n"
            f"  {layout.command(source, dest.format(row.orientation))}"
        )
    if len(patterns) > 1:
        mix = advise_mix(table)
        first, second = mix.pair
        lines.append(
            f"\nfor a mix of {', '.join(patterns)}, read equally often:\n"
            f"  one layout: {mix.single.describe()} ({duration_text(mix.single_seconds)} in all)\n"
            f"  two copies: {first.describe()}, and {second.describe()} "
            f"({duration_text(mix.pair_seconds)} in all; the second copy stores "
            f"{size_text(mix.second_copy_bytes)} more)"
        )
    return "\n".join(lines)


def _figure(value: float) -> str:
    """2-3 significant digits as a person reads them: one decimal below 10, whole numbers
    (with thousands separators) from 10."""
    if value < 10:
        text = f"{value:.1f}"
        return text.removesuffix(".0")
    return f"{value:,.0f}"


def size_text(n_bytes: float) -> str:
    """Bytes in B, kB, MB, GB or TB (powers of 1000): ``1_560_000`` → ``"1.6 MB"``,
    ``2.91e10`` → ``"29 GB"``, ``3e15`` → ``"3,000 TB"``."""
    value = float(n_bytes)
    if round(value) < 1_000:
        return f"{value:,.0f} B"
    for unit in ("kB", "MB", "GB"):
        value /= 1_000
        if round(value) < 1_000:
            return f"{_figure(value)} {unit}"
    return f"{_figure(value / 1_000)} TB"


def duration_text(seconds: float) -> str:
    """Seconds in s, min or h: ``0.0523`` → ``"0.052 s"``, ``42.4`` → ``"42 s"``, ``2430`` →
    ``"40 min"``, ``5400`` → ``"1.5 h"``, ``3.6e6`` → ``"1,000 h"``."""
    value = float(seconds)
    if value < 1:
        return "0 s" if value <= 0 else f"{value:.2g} s"
    if round(value) < 60:
        return f"{_figure(value)} s"
    if round(value / 60) < 60:
        return f"{_figure(value / 60)} min"
    return f"{_figure(value / 3_600)} h"


def count_text(n: float) -> str:
    """A count with thousands separators: ``1251`` → ``"1,251"``."""
    return f"{round(n):,}"
