"""Which layout to write an atlas in, for the way its users read it: ``chunkatlas advise``.

A study run leaves ``cost_model.json``: the cost model's coefficients per backend (seconds from
requests, bytes and decoding, :mod:`._fit`), what each codec stores and costs to decode
per stored value, and the requests its reader makes beyond a layout's ranges
(:mod:`._traffic`).  From an atlas's size alone, every candidate layout's requests, bytes and
objects are predicted per access pattern, and its seconds from the coefficients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from chunkatlas.errors import ChunkatlasError
from chunkatlas.model._cost_model import CostModel
from chunkatlas.model._text import count_text, duration_text, size_text
from chunkatlas.model._traffic import (
    X_PATTERNS,
    Atlas,
    Layout,
    chunk_values,
    predict_traffic,
)

CELL_CHUNKS = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
GENE_CHUNKS = (1, 5, 20, 50, 200, 1_000)
SHARDS = (1, 4, 16, 64)
#: The largest stored object a layout may have: the model's bytes cost is measured on objects
#: of a few MB read in parallel, and a few huge objects leave a reader one stream each.
MAX_OBJECT_BYTES = 256e6


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
