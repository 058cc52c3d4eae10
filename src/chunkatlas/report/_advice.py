"""Which layout to write an atlas in, for the way its users read it: ``chunkatlas advise``.

A study run leaves ``cost_model.json``: the cost model's coefficients per backend (seconds from
requests, bytes and decoding, :mod:`._cost_model`), what each codec stores and costs to decode
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
from chunkatlas.report._cost_model import BackendFit, CostFit
from chunkatlas.report._traffic import (
    X_PATTERNS,
    Atlas,
    Encoding,
    Layout,
    calibrate,
    chunk_values,
    encodings,
    predict_traffic,
)

#: The cost model shipped with the package: fitted on the default run of the demo atlas.
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
        text = files("chunkatlas.report").joinpath(REFERENCE_MODEL).read_text()
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


def atlas_of(source: str, tissue: str | None = None, obs_filter: str | None = None) -> Atlas:
    """The size of a sparse atlas: an AnnData zarr store or h5ad file (X's shape and stored
    values, from metadata), or a TileDB-SOMA Experiment (its raw X, or one tissue's share of
    it with ``tissue`` and the Census ``obs_filter``)."""
    where = str(source).rstrip("/")
    if where.endswith(".h5ad"):
        import h5py

        with h5py.File(where, "r") as handle:
            x = handle["X"]
            return _sparse_atlas(tuple(x.attrs.get("shape", x.shape)), x, where)
    if where.endswith(".zarr"):
        from chunkatlas.store import matrix_shape, open_anndata_group

        x = open_anndata_group(where)["X"]
        return _sparse_atlas(matrix_shape(x), x, where)
    return _soma_atlas(where, tissue, obs_filter)


def _sparse_atlas(shape: tuple[int, ...], x, where: str) -> Atlas:
    if "data" not in x:
        n_obs, n_vars = shape
        return Atlas(int(n_obs), int(n_vars), int(n_obs) * int(n_vars))  # dense: every value
    return Atlas(int(shape[0]), int(shape[1]), int(x["data"].shape[0]))


def _soma_atlas(uri: str, tissue: str | None, obs_filter: str | None) -> Atlas:
    import tiledbsoma

    from chunkatlas.ingest import DEFAULT_OBS_FILTER, build_obs_filter

    try:
        experiment = tiledbsoma.Experiment.open(uri)
    except Exception as err:  # tiledbsoma raises several types for "not an experiment"
        raise ChunkatlasError(
            f"{uri} is not an AnnData store (.zarr, .h5ad) nor a SOMA Experiment "
            f"({type(err).__name__})"
        ) from None
    with experiment:
        measurement = experiment.ms["RNA"]
        x = measurement.X["raw"]
        n_total, n_vars = x.shape[0], measurement.var.count
        n_obs = n_total
        if tissue is not None:
            query = build_obs_filter(obs_filter or DEFAULT_OBS_FILTER, tissue)
            table = experiment.obs.read(value_filter=query, column_names=["soma_joinid"])
            n_obs = len(table.concat())
            if n_obs == 0:
                raise ChunkatlasError(f"tissue {tissue!r} has no cells in {uri} ({query})")
        nnz = round(x.nnz * n_obs / max(n_total, 1))
    return Atlas(int(n_obs), int(n_vars), int(nnz))


def advice_text(
    atlas: Atlas, model: CostModel, backend: str, patterns: Sequence[str], source: str
) -> str:
    """What ``chunkatlas advise`` prints: the atlas and the model, then per pattern the layout
    with its predicted costs and the command that writes it from ``source``, then the mix."""
    table = predictions(atlas, model, backend, patterns)
    lines = [
        f"{atlas.n_obs:,} cells x {atlas.n_vars:,} genes, {atlas.nnz:,} stored values "
        f"({atlas.nnz / atlas.n_obs:,.0f} per cell), read over {backend}; coefficients "
        f"from {model.origin}",
        model.fit[backend].describe(),
    ]
    dest = Path(source).stem + "-{}.zarr"
    for row in best_per_pattern(table).itertuples():
        layout = Layout(row.orientation, row.chunk, row.shard, row.codec)
        lines.append(
            f"\n{row.pattern}: {layout.describe()}\n  predicted {row.requests:,} requests, "
            f"{row.bytes / 1e6:,.3g} MB, {row.seconds:,.3g} s; {row.objects:,} objects of X\n"
            f"  {layout.command(source, dest.format(row.orientation))}"
        )
    if len(patterns) > 1:
        mix = advise_mix(table)
        first, second = mix.pair
        lines.append(
            f"\nfor a mix of {', '.join(patterns)}, read equally often:\n"
            f"  one layout: {mix.single.describe()} ({mix.single_seconds:,.3g} s in all)\n"
            f"  two copies: {first.describe()}, and {second.describe()} "
            f"({mix.pair_seconds:,.3g} s in all; the second copy stores "
            f"{mix.second_copy_bytes / 1e9:,.3g} GB more)"
        )
    return "\n".join(lines)
