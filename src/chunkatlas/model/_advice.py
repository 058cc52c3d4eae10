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

import numpy as np
import pandas as pd

from chunkatlas.errors import ChunkatlasError
from chunkatlas.model._cost_model import CostModel
from chunkatlas.model._objects import DEMO_COLUMNS, Columns, open_requests, store_objects
from chunkatlas.model._prices import Prices
from chunkatlas.model._reader import READERS
from chunkatlas.model._text import count_text, duration_text, money_text, size_text
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
#: The largest stored object a layout may have.  The model is fitted on objects of a few MB;
#: on the held-out tissue (benchmarks/README.md), all of X in objects of 60-170 MB (whole shards
#: or one shard per array) took 3-7x the model's seconds under plain zarr, objects of 15-22 MB
#: 1.2-1.6x: a layout of larger objects is not proposed.
MAX_OBJECT_BYTES = 32e6
#: Layouts within this share of the fastest are near-ties: of them, the one with the fewest
#: objects in the store is advised (then the fewest bytes, then the fastest).
NEAR_TIE = 0.10
LAYOUT_KEYS = ["orientation", "chunk", "shard", "codec"]


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
    atlas: Atlas,
    model: CostModel,
    backend: str,
    patterns: Sequence[str],
    reader: str | None = None,
) -> pd.DataFrame:
    """Every candidate layout's predicted requests, bytes, objects and seconds per pattern,
    read by ``reader`` (:data:`chunkatlas.model._reader.READERS`; None: the one the model was
    fitted on)."""
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
                    "objects_read": traffic.objects_read,
                    "x_bytes": x_bytes,
                    "store_bytes": x_bytes,
                    "decode_seconds": encoding.decode_seconds(atlas, layout),
                }
            )
    table = pd.DataFrame(rows)
    table["seconds"] = model.fit[backend].predict(table, reader)
    return table


def with_store_objects(
    table: pd.DataFrame, atlas: Atlas, columns: Columns = DEMO_COLUMNS
) -> pd.DataFrame:
    """``table`` (of :func:`predictions`) with ``store_objects``: the objects of the whole store
    of each layout, X's and those of obs and var (``columns``) and the metadata
    (:func:`~chunkatlas.model._objects.store_objects`)."""
    counted = table["objects"].map(lambda objects: store_objects(atlas, objects, columns))
    return table.assign(store_objects=counted.astype("int64"))


def objects_column(table: pd.DataFrame) -> str:
    """The objects a layout is judged by: its whole store's if known, else X's."""
    return "store_objects" if "store_objects" in table else "objects"


def within_cap(table: pd.DataFrame, max_objects: int | None) -> pd.DataFrame:
    """The rows of ``table`` whose store has at most ``max_objects`` objects (None: all).

    Raises
    ------
    ChunkatlasError
        If no layout is left: one line with the fewest objects any layout needs.
    """
    if max_objects is None:
        return table
    column = objects_column(table)
    kept = table[table[column] <= max_objects]
    if kept.empty:
        fewest = int(table[column].min())
        raise ChunkatlasError(
            f"--max-objects {max_objects:,}: every layout's store has more objects; the fewest "
            f"any layout needs is {fewest:,} (allowed: {fewest:,} or more)"
        )
    return kept


def near_tie_pick(frame: pd.DataFrame, objects: str) -> object:
    """The label of the row of ``frame`` to advise: of the rows within :data:`NEAR_TIE` of the
    fewest ``seconds``, the one with the fewest ``objects``, then the fewest ``bytes``, then
    the fastest (then the first)."""
    seconds = frame["seconds"].round(9)
    near = frame[seconds <= round(float(seconds.min()) * (1 + NEAR_TIE), 9)]
    ranked = near.assign(rounded=seconds).sort_values([objects, "bytes", "rounded"], kind="stable")
    return ranked.index[0]


def best_per_pattern(table: pd.DataFrame) -> pd.DataFrame:
    """The layout to advise per pattern: of the layouts within :data:`NEAR_TIE` (10 %) of the
    fastest, the one with the fewest objects (the whole store's, ``store_objects``, if the
    table has them, else X's), then the fewest bytes read, then the fastest; full ties go to
    the first in grid order (orientation, chunk, shard, codec)."""
    ranked = table.sort_values(["pattern", *LAYOUT_KEYS], kind="stable")
    column = objects_column(table)
    chosen = [near_tie_pick(rows, column) for _, rows in ranked.groupby("pattern", sort=False)]
    best = table.loc[chosen]
    order = {p: i for i, p in enumerate(X_PATTERNS)}
    return best.sort_values("pattern", key=lambda s: s.map(order)).reset_index(drop=True)


@dataclass(frozen=True)
class MixAdvice:
    """The layout to advise for a mix of patterns, and the pair (a cell-major and a gene-major
    copy; None if the table holds one orientation only)."""

    single: Layout
    single_seconds: float
    pair: tuple[Layout, Layout] | None
    pair_seconds: float
    second_copy_bytes: float


def advise_mix(table: pd.DataFrame) -> MixAdvice:
    """For the patterns of ``table`` read equally often (once each): the single layout and the
    pair of layouts (cell-major and gene-major copies, each pattern read from the one that
    serves it faster), each chosen as :func:`best_per_pattern` chooses: of those within
    :data:`NEAR_TIE` of the least seconds in all, the fewest objects (a pair's two stores'),
    then the fewest bytes read, then the fastest; and what the second copy adds in bytes."""
    indexed = table.set_index([*LAYOUT_KEYS, "pattern"])
    seconds = indexed["seconds"].unstack("pattern")  # layouts in grid order
    moved = indexed["bytes"].unstack("pattern").loc[seconds.index]
    objects = table.groupby(LAYOUT_KEYS)[objects_column(table)].first().loc[seconds.index]
    layouts = pd.DataFrame(
        {"seconds": seconds.sum(axis=1), "bytes": moved.sum(axis=1), "objects": objects}
    )
    key = near_tie_pick(layouts, "objects")
    single, single_seconds = Layout(*key), float(layouts.loc[key, "seconds"])
    cells = (seconds.index.get_level_values("orientation") == "cells").astype(bool)
    if cells.all() or not cells.any():
        return MixAdvice(single, single_seconds, None, math.nan, 0.0)
    a, b = seconds.to_numpy()[cells], seconds.to_numpy()[~cells]
    from_a = a[:, None, :] <= b[None, :, :]  # each pattern read from the faster copy
    bytes_a, bytes_b = moved.to_numpy()[cells], moved.to_numpy()[~cells]
    objects_a, objects_b = objects.to_numpy()[cells], objects.to_numpy()[~cells]
    pairs = pd.DataFrame(
        {
            "seconds": np.where(from_a, a[:, None], b[None]).sum(axis=-1).ravel(),
            "bytes": np.where(from_a, bytes_a[:, None], bytes_b[None]).sum(axis=-1).ravel(),
            "objects": (objects_a[:, None] + objects_b[None]).ravel(),
        }
    )
    chosen = near_tie_pick(pairs, "objects")
    i, j = divmod(int(chosen), len(b))
    pair = (Layout(*seconds.index[cells][i]), Layout(*seconds.index[~cells][j]))
    other = pair[1] if single.orientation == "cells" else pair[0]
    copy = table[
        (table["orientation"] == other.orientation)
        & (table["chunk"] == other.chunk)
        & (table["codec"] == other.codec)
    ]
    return MixAdvice(
        single,
        single_seconds,
        pair,
        float(pairs.loc[chosen, "seconds"]),
        float(copy["x_bytes"].iloc[0]),
    )


def costs_text(table: pd.DataFrame, layouts: Sequence[Layout], prices: Prices) -> str:
    """The objects and money of a store in a layout (or of a pair of stores) read in the
    patterns of ``table``, each read from the copy that reads it faster: objects of X and of
    the whole store, storage per month, dollars per 1,000 reads (of each pattern) and the PUTs
    of writing it."""
    rows = [
        table[
            (table["orientation"] == layout.orientation)
            & (table["chunk"] == layout.chunk)
            & (table["shard"] == layout.shard)
            & (table["codec"] == layout.codec)
        ]
        for layout in layouts
    ]
    x_objects = sum(int(r["objects"].iloc[0]) for r in rows)
    objects = sum(int(r[objects_column(table)].iloc[0]) for r in rows)
    storage = sum(prices.storage_per_month(float(r["store_bytes"].iloc[0])) for r in rows)
    read = pd.concat(rows).sort_values("seconds", kind="stable").drop_duplicates("pattern")
    reads = sum(map(prices.per_1000_reads, read["requests"], read["bytes"]))
    stores = "the store" if len(rows) == 1 else "the two stores"
    each = " of each pattern" if len(read) > 1 else ""
    return (
        f"{count_text(x_objects)} objects of X, {count_text(objects)} in {stores}; storage "
        f"{money_text(storage)} per month, {money_text(reads)} per 1,000 reads{each}; "
        f"writing it: {money_text(prices.writing(objects))} in PUTs"
    )


def advice_text(
    atlas: Atlas,
    model: CostModel,
    backend: str,
    patterns: Sequence[str],
    source: str,
    *,
    prices: Prices | None = None,
    max_objects: int | None = None,
    columns: Columns = DEMO_COLUMNS,
    columns_from: str = "the demo atlas's",
    reader: str | None = None,
) -> str:
    """What ``chunkatlas advise`` prints: the atlas, the model and the price table (``prices``,
    default :class:`~chunkatlas.model._prices.Prices`), then per pattern the layout
    (:func:`best_per_pattern`; stores of more than ``max_objects`` objects left out,
    :func:`within_cap`) with its predicted costs, objects and money and the command that
    writes it from ``source``, then the mix.  The whole store's objects count ``columns``, the
    obs and var arrays (whose: ``columns_from``).  Seconds are ``reader``'s (None: the reader
    the model was fitted on)."""
    prices = prices or Prices()
    reader = reader or model.fit[backend].reader
    table = predictions(atlas, model, backend, patterns, reader)
    every = with_store_objects(table, atlas, columns)
    table = within_cap(every, max_objects)
    values = (
        f"X dense: all {count_text(atlas.nnz)} values stored"
        if atlas.dense
        else f"{count_text(atlas.nnz)} stored values ({atlas.nnz / atlas.n_obs:,.0f} per cell)"
    )
    lines = [
        f"{count_text(atlas.n_obs)} cells x {count_text(atlas.n_vars)} genes, {values}, read "
        f"over {backend} by {READERS[reader].description}",
        *model.describe(backend),
        prices.describe(),
        f"objects of the store: X's, obs's and var's ({columns.describe()}, {columns_from}) "
        "and a zarr.json per group and array; of the layouts within "
        f"{NEAR_TIE:.0%} of the fastest, the one with the fewest objects is advised",
        f"open: {open_requests(columns)} requests in every layout (the manifest, the metadata, "
        "then each obs and var array whole, in one object, at any number of cells)",
    ]
    if max_objects is not None:
        kept, count = (len(t.drop_duplicates(LAYOUT_KEYS)) for t in (table, every))
        lines.append(
            f"--max-objects {max_objects:,}: {kept:,} of {count:,} layouts "
            f"{'has' if kept == 1 else 'have'} at most {max_objects:,} objects in the store"
        )
    dest = Path(source).stem + "-{}.zarr"
    for row in best_per_pattern(table).itertuples():
        layout = Layout(row.orientation, row.chunk, row.shard, row.codec)
        lines.append(
            f"\n{row.pattern}: {layout.describe()}\n  predicted {count_text(row.requests)} "
            f"requests, {size_text(row.bytes)}, {duration_text(row.seconds)}\n"
            f"  {costs_text(table[table['pattern'] == row.pattern], [layout], prices)}\n"
            f"  {layout.command(source, dest.format(row.orientation))}"
        )
    if len(patterns) > 1:
        mix = advise_mix(table)
        lines.append(
            f"\nfor a mix of {', '.join(patterns)}, read equally often:\n"
            f"  one layout: {mix.single.describe()} ({duration_text(mix.single_seconds)} in all)"
            f"\n    {costs_text(table, [mix.single], prices)}"
        )
        if mix.pair is None:
            lines.append("  two copies: none (the layouts left are of one orientation)")
        else:
            first, second = mix.pair
            lines.append(
                f"  two copies: {first.describe()}, and {second.describe()} "
                f"({duration_text(mix.pair_seconds)} in all; the second copy stores "
                f"{size_text(mix.second_copy_bytes)} more)\n"
                f"    {costs_text(table, mix.pair, prices)}"
            )
    return "\n".join(lines)
