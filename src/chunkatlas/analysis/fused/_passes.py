"""The passes over X on a Dask cluster: library sizes, moments and HVGs, the Gram matrix and the
PCA, then the projection streamed in row order.  Partial results are added in submission order,
so results are identical from run to run."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import zarr

from chunkatlas.analysis._checks import refuse_problems
from chunkatlas.analysis._metering import (
    STEP_CLIPPED_MOMENTS,
    STEP_COUNT_MOMENTS,
    STEP_EIGH,
    STEP_GRAM,
    STEP_LIBRARY_SIZES,
    STEP_LOESS,
    STEP_MOMENTS,
    STEP_MOMENTS_AGAIN,
    STEP_OPEN,
    STEP_PROJECTION,
    StepMeter,
)
from chunkatlas.analysis.fused._hvg import (
    batched_dispersion_columns,
    dispersion_columns,
    mean_var,
    normalised_variance,
    seurat_v3_clip,
    seurat_v3_columns,
    welford_mean_var,
)
from chunkatlas.analysis.fused._pca import PcaFit, pca_from_gram
from chunkatlas.analysis.fused._plan import LIBRARY_COLUMN, Block, StoredX, work_dtype
from chunkatlas.analysis.fused._tasks import (
    BlockBatches,
    GramPart,
    PerBatch,
    clear_stash,
    task_batch_clipped,
    task_batch_clipped_rows,
    task_batch_count_moments,
    task_clipped,
    task_count_moments,
    task_gram,
    task_library_sizes,
    task_moments,
    task_project_kept,
)
from chunkatlas.config import FLAVORS, selects_on_counts
from chunkatlas.errors import ChunkatlasError
from chunkatlas.store import open_on_workers

if TYPE_CHECKING:  # the workers never import pandas or scipy.sparse: they start faster
    import pandas as pd

    from chunkatlas.analysis._batches import Batches


log = logging.getLogger(__name__)

#: Memory (all workers together) for the HVG values kept between pass 3 and pass 4; the rest
#: go to the workers' local disks.
KEEP_MB = 128


def in_order(futures: Sequence) -> Iterator[tuple[int, object]]:
    """(index, result) of each future in submission order, each released once fetched.

    Adding partial results in a fixed order keeps floating-point sums, and so the results,
    identical from run to run whatever order the tasks end in.
    """
    for index, future in enumerate(futures):
        result = future.result()
        future.release()
        yield index, result


def sum_results(futures: Sequence, n_batches: int = 0) -> tuple:
    """Sum of the tuples ``futures`` return, element by element, in submission order
    (:class:`PerBatch` elements into arrays of ``n_batches`` rows)."""
    totals: list = []
    for _, parts in in_order(futures):
        totals = add_parts(totals, parts, n_batches)
    return tuple(totals)


def add_parts(totals: list, parts: Sequence, n_batches: int) -> list:
    """``totals`` (empty: none yet) plus one task's ``parts``, element by element; a
    :class:`PerBatch` part adds its batches' rows into a list of per-batch arrays."""
    added = []
    for i, part in enumerate(parts):
        total = totals[i] if totals else None
        if isinstance(part, PerBatch):
            added.append(part.added_to(total, n_batches))
        else:
            added.append(part if total is None else total + part)
    return added


def library_scale(library: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Per-cell divisor of normalize_total(target_sum=None): size / the median size of the cells
    with counts (scanpy 1.12 leaves empty cells out of the median), in X's float type, 1 for
    empty cells (scanpy's in-memory arithmetic)."""
    counts = library.astype(dtype)
    with_counts = counts[counts > 0]
    if not with_counts.size:
        raise ChunkatlasError("no cell has counts: X holds only zeros")
    target = np.median(with_counts)
    scale = counts / target
    return scale + (scale == 0)


class RowWriter:
    """Streams per-row partial projections, in row order, into a zarr array of float32 rows.

    Consecutive blocks may share their boundary row (its parts are added); rows no block covers
    (cells without stored values) project to zero before centring.
    """

    def __init__(self, array: zarr.Array, offset: np.ndarray):
        self.array, self.offset = array, offset
        self.next_row = 0
        self.pending: tuple[int, np.ndarray] | None = None
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.written = 0

    def add(self, start: int, rows: np.ndarray) -> None:
        if not len(rows):
            return
        rows = np.array(rows, dtype=np.float64)
        if self.pending is not None:
            row, part = self.pending
            if row == start:
                rows[0] += part
            else:
                self._emit(row, part[None, :])
            self.pending = None
        self._emit(start, rows[:-1])
        self.pending = (start + len(rows) - 1, rows[-1])

    def close(self) -> None:
        if self.pending is not None:
            row, part = self.pending
            self._emit(row, part[None, :])
            self.pending = None
        n_obs = self.array.shape[0]
        if self.next_row < n_obs:
            self._emit(n_obs, np.zeros((0, self.array.shape[1])))
        self._flush(final=True)

    def _emit(self, start: int, rows: np.ndarray) -> None:
        if start > self.next_row:  # rows without stored values
            self._append(np.zeros((start - self.next_row, self.array.shape[1])))
        self._append(rows)

    def _append(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        self.buffer.append((rows - self.offset).astype(np.float32))
        self.buffered += len(rows)
        self.next_row += len(rows)
        self._flush()

    def _flush(self, final: bool = False) -> None:
        chunk = self.array.chunks[0]
        if self.buffered < chunk and not final:
            return
        rows = np.concatenate(self.buffer) if self.buffer else np.zeros((0, self.array.shape[1]))
        keep = len(rows) if final else len(rows) // chunk * chunk
        if keep:
            self.array[self.written : self.written + keep] = rows[:keep]
            self.written += keep
        self.buffer = [rows[keep:]] if keep < len(rows) else []
        self.buffered = len(rows) - keep


@dataclass(frozen=True)
class PassContext:
    """What every pass works over: the cluster's ``client``, X as stored, the tasks' blocks
    and the meter of the steps."""

    client: object
    stored_x: StoredX
    blocks: list[Block]
    costs: StepMeter
    batches: Batches | None = None
    #: X already holds normalised, log1p'd values (``analysis.normalized``): no library sizes,
    #: no normalize_total or log1p; else X must hold counts, integers
    normalized: bool = False

    @property
    def kept_kind(self) -> str:
        """How pass 3 turns the HVGs' stored values into the values the PCA is of."""
        return "identity" if self.normalized else "log1p"

    @functools.cached_property
    def block_batches(self) -> list[BlockBatches | None]:
        """Each block's batches (None for all without batches)."""
        if self.batches is None:
            return [None] * len(self.blocks)
        return [BlockBatches(*self.batches.of_rows(b.row_start, b.row_stop)) for b in self.blocks]

    @property
    def n_batches(self) -> int:
        return 0 if self.batches is None else len(self.batches.names)

    @functools.cached_property
    def batch_chains(self) -> list[tuple[list[int], list[np.ndarray]]]:
        """For each batch, the blocks holding its cells and, in each, which rows are its."""
        chains: list[tuple[list[int], list[np.ndarray]]] = [([], []) for _ in range(self.n_batches)]
        for index, batches in enumerate(self.block_batches):
            for local, batch in enumerate(batches.present):
                chains[batch][0].append(index)
                chains[batch][1].append(batches.row_batch == local)
        return chains

    @property
    def batch_by_batch(self) -> bool:
        """Whether seurat_v3's passes run one task per batch, through its cells in row order
        (EXTRA_DECODES): with batches, unless that decodes too many blocks again."""
        if self.batches is None:
            return False
        extra = sum(len(blocks) for blocks, _ in self.batch_chains) - len(self.blocks)
        return extra <= max(EXTRA_DECODES * len(self.blocks), MIN_EXTRA_DECODES)

    def map(self, task: Callable, *per_block: Sequence, **shared) -> list:
        """One ``task`` a block: ``task(store, block, *its item of each per_block, **shared)``."""
        store = self.stored_x.location
        return self.client.map(
            task, [store] * len(self.blocks), self.blocks, *per_block, pure=False, **shared
        )


@dataclass
class KeptValues:
    """The HVG values pass 3 keeps on the workers for pass 4, named ``token`` in their stashes;
    ``holders`` says which worker keeps each block's (None: none)."""

    ctx: PassContext
    block_scales: list[np.ndarray]
    positions: object  # hvg_positions, scattered to every worker
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    holders: dict[int, str | None] = field(default_factory=dict)

    def release(self) -> None:
        """Drop the values from the workers' memory and local disks."""
        self.ctx.client.run(clear_stash, self.token)


@dataclass
class FusedResult:
    """What the passes computed, before the projection is written (:meth:`project`)."""

    var: pd.DataFrame
    hvg: np.ndarray
    fit: PcaFit
    costs: StepMeter
    kept: KeptValues

    def project(self, array: zarr.Array) -> None:
        """Pass 4 into ``array`` (n_obs x n_comps float32); then the workers drop the HVG
        values they kept."""
        project_kept(self.kept, self.fit, array)


def run_passes(
    client,
    stored_x: StoredX,
    blocks: list[Block],
    *,
    flavor: str,
    n_top_genes: int,
    n_comps: int,
    keep_budget_mb: float = KEEP_MB,
    batches: Batches | None = None,
    normalized: bool = False,
) -> FusedResult:
    """Passes 1-3 and the PCA on the cluster of ``client``; HVGs selected per batch of
    ``batches`` and merged (None: over all cells at once).  With ``normalized`` X holds
    normalised, log1p'd values, taken as they are (no pass 1); else it must hold counts.

    The result's :meth:`FusedResult.project` runs pass 4, streaming the projection into a zarr
    array of n_obs x n_comps float32, and then releases the HVG values kept on the workers.
    """
    if flavor not in FLAVORS:
        raise ChunkatlasError(f"HVG flavor {flavor!r} is not one of {', '.join(FLAVORS)}")
    ctx = PassContext(client, stored_x, blocks, StepMeter(client), batches, normalized)
    if batches is not None:
        check_batch_memory(ctx)
    with ctx.costs.step(STEP_OPEN, "each worker opens the store"):
        open_on_workers(client, stored_x.location)
    table, scale, stored = select_hvgs(ctx, flavor, n_top_genes)
    hvg = table["highly_variable"].to_numpy()
    width = int(hvg.sum())
    if n_comps >= width:
        raise ChunkatlasError(f"n_comps {n_comps} must be below the number of HVGs ({width})")
    gram, sums, kept = gram_pass(ctx, hvg, scale, stored, keep_budget_mb)
    fit = fit_pca(gram, sums, n_comps, kept)
    return FusedResult(table, hvg, fit, ctx.costs, kept)


#: Bytes a task holds per batch it meets and gene: sums and squares (float64) and positive
#: counts (int32), or in seurat_v3's second pass the clip values and two sums (float64); the
#: driver holds about as much again per batch and gene while it selects per batch.
BATCH_BYTES = 24
#: Share of a worker's memory limit a task's per-batch sums may take (the rest: its block of X).
BATCH_SHARE = 0.25


def check_batch_memory(ctx: PassContext) -> None:
    """Say what the per-batch moments weigh, and refuse before any pass when one task's would
    not fit in its share of a worker's memory: a task holds a row of sums per batch among its
    cells (few where cells are grouped by batch, as the Census's), the driver one per batch."""
    n_vars = ctx.stored_x.n_vars
    most = max((len(b.present) for b in ctx.block_batches), default=0)
    task_mb = most * n_vars * BATCH_BYTES / 2**20
    driver_mb = ctx.n_batches * n_vars * BATCH_BYTES / 2**20
    log.info(
        "batch_key %r: %d batches x %d genes; per-batch moments %.0f MB in the driver, at most "
        "%.1f MB in a task (its cells span up to %d batches)",
        ctx.batches.key,
        ctx.n_batches,
        n_vars,
        driver_mb,
        task_mb,
        most,
    )
    limits = [w.get("memory_limit") or 0 for w in ctx.client.scheduler_info()["workers"].values()]
    limit_mb = min(limits, default=0) / 2**20
    if limit_mb and task_mb > BATCH_SHARE * limit_mb:
        raise ChunkatlasError(
            f"batch_key {ctx.batches.key!r}: a task's cells span {most} of the "
            f"{ctx.n_batches} batches, whose per-batch moments ({task_mb:.0f} MB) exceed "
            f"{BATCH_SHARE:.0%} of a worker's {limit_mb:.0f} MB; give the workers more memory, "
            "fewer rows per task (--chunk), or a store whose cells are grouped by batch"
        )


# ----------------------------------------------------------------------------- passes 1 and 2


def select_hvgs(
    ctx: PassContext, flavor: str, n_top_genes: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Passes 1 and 2: the HVG table, per-cell scale and per-gene stored counts.  Where the
    store's obs records each cell's library size (``raw_sum``), seurat and cell_ranger skip
    pass 1: pass 2 computes the row sums anyway and, should they differ, runs again with
    them."""
    if selects_on_counts(flavor):
        return select_hvgs_v3(ctx, flavor, n_top_genes)
    n_obs = ctx.stored_x.n_obs
    if ctx.normalized:  # X as stored: seurat's statistics on its expm1, as scanpy's
        scale = np.ones(n_obs, dtype=work_dtype(ctx.stored_x.dtype))
        kind = "expm1" if flavor == "seurat" else "identity"
        _, *moments = moments_pass(ctx, scale, kind, STEP_MOMENTS)
    else:
        library = library_sizes(ctx)
        library, moments = normalised_moments(ctx, library, flavor)
        scale = library_scale(library, work_dtype(ctx.stored_x.dtype))
    if ctx.batches is None:
        sums, squares, stored = moments
        mean, var = mean_var(sums, squares, n_obs)
        return dispersion_columns(mean[None], var[None], flavor, n_top_genes), scale, stored
    sums, squares, positive = moments[0]
    mean, var = batch_mean_var(sums, squares, ctx.batches.sizes)
    table = batched_dispersion_columns(
        mean, var, positive > 0, flavor, n_top_genes, ctx.batches.gene_name_order
    )
    return table, scale, positive.sum(axis=0)


def batch_mean_var(
    sums: np.ndarray, squares: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each batch's gene means and variances (batches x genes), as scanpy takes them in a
    batch's own cells."""
    pairs = [mean_var(s, q, int(n)) for s, q, n in zip(sums, squares, sizes, strict=True)]
    return np.array([m for m, _ in pairs]), np.array([v for _, v in pairs])


def select_hvgs_v3(ctx: PassContext, flavor: str, n_top_genes: int) -> tuple:
    """seurat_v3 and seurat_v3_paper select on the counts: their moments (pass 1, with the
    library sizes, per batch too), the loess fit of each batch's variance, then the moments of
    the counts clipped by that fit (pass 2)."""
    n_obs = ctx.stored_x.n_obs
    library, sums, squares, stored, batch_means, batch_vars = count_moments_pass(ctx)
    mean, var = mean_var(sums, squares, n_obs)
    if ctx.batches is None:
        batch_means, batch_vars, sizes = mean[None], var[None], np.array([n_obs])
    else:
        sizes = ctx.batches.sizes
    with ctx.costs.step(STEP_LOESS, f"seurat_v3 variance fit, {len(sizes)} batch(es)"):
        fits = [
            seurat_v3_clip(m, v, int(n), where=batch_named(ctx, b))
            for b, (m, v, n) in enumerate(zip(batch_means, batch_vars, sizes, strict=True))
        ]
    reg_std = np.array([r for r, _ in fits])
    clipped_sums, clipped_squares = clipped_moments_pass(ctx, np.array([c for _, c in fits]))
    norm_vars = np.array(
        [
            normalised_variance(*args)
            for args in zip(batch_means, reg_std, clipped_sums, clipped_squares, sizes, strict=True)
        ]
    )
    table = seurat_v3_columns(
        mean, var, norm_vars, flavor, n_top_genes, batched=ctx.batches is not None
    )
    return table, library_scale(library, work_dtype(ctx.stored_x.dtype)), stored


#: seurat_v3's passes with batches run one task per batch, carrying scanpy's Welford recurrence
#: (and its sums of clipped counts) through the batch's blocks in row order, while that decodes
#: few blocks more than once: a block is decoded once per batch among its cells, so batches as
#: large as the tasks or larger (a Census tissue's datasets) cost little.  Past this many extra
#: decodes, as a share of the blocks (and at least MIN_EXTRA_DECODES), the batches' moments are
#: summed block by block instead (batches smaller than the tasks, or interleaved).
EXTRA_DECODES = 0.5
MIN_EXTRA_DECODES = 4


def batch_named(ctx: PassContext, index: int) -> str:
    """Where a per-batch failure happened, for its message ('' without batches)."""
    if ctx.batches is None:
        return ""
    return f" in batch {ctx.batches.names[index]!r} of batch_key {ctx.batches.key!r}"


def count_moments_pass(ctx: PassContext) -> tuple:
    """seurat_v3's pass 1: library sizes, sums, sums of squares and stored counts per gene of
    the counts (which must be integers), and with batches each batch's gene means and variances
    (batches x genes; None without batches)."""
    with ctx.costs.step(STEP_COUNT_MOMENTS, "pass 1: library sizes and moments of the counts"):
        if ctx.batches is None:
            futures = ctx.map(task_count_moments, ctx.block_batches, n_vars=ctx.stored_x.n_vars)
            rows = gather_rows(futures, ctx.blocks, ctx.stored_x, integers=True, on_counts=True)
            return (*rows, None, None)
        if ctx.batch_by_batch:
            return welford_pass(ctx)
        log.warning(
            "batch_key %r: batches smaller than the tasks or interleaved, so their gene means "
            "and variances are summed block by block, not run through scanpy's Welford "
            "recurrence cell by cell (that would decode blocks again): they may differ from "
            "in-memory scanpy's in the last bits, which the loess can turn into a few changed "
            "ranks (as scanpy on Dask's do); more rows per task (--chunk) avoid it",
            ctx.batches.key,
        )
        futures = ctx.map(task_count_moments, ctx.block_batches, n_vars=ctx.stored_x.n_vars)
        library, sums, squares, stored, per_batch = gather_rows(
            futures,
            ctx.blocks,
            ctx.stored_x,
            integers=True,
            n_batches=ctx.n_batches,
            on_counts=True,
        )
        return library, sums, squares, stored, *batch_mean_var(*per_batch[:2], ctx.batches.sizes)


def submit_per_batch(ctx: PassContext, task: Callable, per_batch: Sequence) -> list:
    """One ``task`` a batch: ``task(store, its blocks, its rows in them, its item of
    per_batch)``."""
    return [
        ctx.client.submit(
            task,
            ctx.stored_x.location,
            [ctx.blocks[i] for i in blocks],
            selected,
            item,
            pure=False,
        )
        for (blocks, selected), item in zip(ctx.batch_chains, per_batch, strict=True)
    ]


def welford_pass(ctx: PassContext) -> tuple:
    """seurat_v3's pass 1 as one task per batch (:func:`task_batch_count_moments`)."""
    stored_x, n_vars = ctx.stored_x, ctx.stored_x.n_vars
    chains = ctx.batch_chains
    futures = submit_per_batch(ctx, task_batch_count_moments, [n_vars] * ctx.n_batches)
    library = np.zeros(stored_x.n_obs)
    problems = np.zeros(3, dtype=np.int64)
    totals: list = []
    means, variances = np.zeros((ctx.n_batches, n_vars)), np.zeros((ctx.n_batches, n_vars))
    sizes = ctx.batches.sizes
    for b, (row_sums, found, *moments, welford) in in_order(futures):
        for index, rows in zip(chains[b][0], row_sums, strict=True):
            block = ctx.blocks[index]
            library[block.row_start : block.row_stop] += rows
        problems += found
        totals = add_parts(totals, moments, 0)
        means[b], variances[b] = welford_mean_var(*welford, int(sizes[b]))
    refuse_problems(problems, integers=True, where=stored_x.location, on_counts=True)
    return library, *totals, means, variances


def clipped_moments_pass(ctx: PassContext, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """seurat_v3's pass 2: per-gene moments of the counts clipped at ``clip`` (a row per batch),
    as (batches x genes) sums and squares.  A task gets the clip rows of its own batches."""
    with ctx.costs.step(STEP_CLIPPED_MOMENTS, "pass 2: moments of the clipped counts"):
        if ctx.batches is None:
            shared = ctx.client.scatter(clip[0], broadcast=True)
            sums, squares = sum_results(ctx.map(task_clipped, clip=shared))
            return sums[None], squares[None]
        if ctx.batch_by_batch:
            parts = [
                part for _, part in in_order(submit_per_batch(ctx, task_batch_clipped_rows, clip))
            ]
            return np.array([s for s, _ in parts]), np.array([q for _, q in parts])
        rows = clip_rows(ctx, clip)
        ((sums, squares),) = sum_results(
            ctx.map(task_batch_clipped, ctx.block_batches, rows), ctx.n_batches
        )
        return sums, squares


def clip_rows(ctx: PassContext, clip: np.ndarray) -> list:
    """Each block's rows of ``clip`` (its batches'), sent to the workers once per distinct set
    of batches: neighbouring blocks of a store grouped by batch share them."""
    sent: dict[bytes, object] = {}
    rows = []
    for batches in ctx.block_batches:
        key = batches.present.tobytes()
        if key not in sent:
            sent[key] = ctx.client.scatter(clip[batches.present])
        rows.append(sent[key])
    return rows


def library_sizes(ctx: PassContext) -> np.ndarray:
    """Pass 1 (seurat, cell_ranger): each cell's library size, which normalize_total's target
    (their median) needs before any normalised value; none when the store's obs records them."""
    recorded = ctx.stored_x.library
    if recorded is not None:  # no pass for what the store records; pass 2 checks it
        log.info("library sizes: obs %r of the store (checked in pass 2)", LIBRARY_COLUMN)
        return recorded
    with ctx.costs.step(STEP_LIBRARY_SIZES, "pass 1"):
        futures = ctx.map(task_library_sizes)
        (library,) = gather_rows(futures, ctx.blocks, ctx.stored_x, integers=True)
    return library


def normalised_moments(ctx: PassContext, library: np.ndarray, flavor: str) -> tuple:
    """Pass 2 (seurat, cell_ranger) with ``library``: the library sizes it checked, and the
    per-gene sums, sums of squares and stored counts (with batches: one list of per-batch sums,
    squares and positive counts).  Should X's row sums differ from the library sizes obs
    recorded, pass 2 runs again with X's own."""
    kind = "log1p_expm1" if flavor == "seurat" else "log1p"
    step = STEP_MOMENTS
    while True:
        scale = library_scale(library, work_dtype(ctx.stored_x.dtype))
        own, *moments = moments_pass(ctx, scale, kind, step)
        if np.array_equal(own, library):
            return library, moments
        first = int(np.flatnonzero(own != library)[0])
        log.warning(
            "obs %r of cell %d is %r, X's row sum %r: pass 2 again with X's own library sizes",
            LIBRARY_COLUMN,
            first,
            library[first],
            own[first],
        )
        library, step = own, STEP_MOMENTS_AGAIN


def moments_pass(ctx: PassContext, scale: np.ndarray, kind: str, step: str) -> tuple:
    """One pass 2: each cell's row sum and per-gene moments of the values divided by ``scale``
    (:func:`library_scale`) and transformed (``kind``: log1p'd, or as they are where X is
    already normalised)."""
    what = "X as stored" if ctx.normalized else "the normalised values"
    with ctx.costs.step(step, f"pass 2: moments of {what}, {kind}"):
        futures = ctx.map(
            task_moments,
            scales(scale, ctx.blocks),
            ctx.block_batches,
            kind=kind,
            n_vars=ctx.stored_x.n_vars,
        )
        return gather_rows(
            futures,
            ctx.blocks,
            ctx.stored_x,
            integers=not ctx.normalized,
            n_batches=ctx.n_batches,
        )


def gather_rows(
    futures: Sequence,
    blocks: Sequence[Block],
    stored_x: StoredX,
    *,
    integers: bool,
    n_batches: int = 0,
    on_counts: bool = False,
) -> tuple:
    """Library sizes (shared rows added up) and any summed per-gene moments from the futures of
    a pass whose tasks return (row sums, problem counts, *moments), after refusing X if it
    holds values that are not counts (``integers``: nor non-integer ones; ``on_counts``: the
    HVG flavor selects on counts, for the message)."""
    library = np.zeros(stored_x.n_obs, dtype=np.float64)
    problems = np.zeros(3, dtype=np.int64)
    totals: list = []
    for index, (rows, found, *parts) in in_order(futures):
        block = blocks[index]
        library[block.row_start : block.row_stop] += rows
        problems += found
        totals = add_parts(totals, parts, n_batches)
    refuse_problems(problems, integers=integers, where=stored_x.location, on_counts=on_counts)
    return (library, *totals)


def scales(scale: np.ndarray, blocks: Sequence[Block]) -> list[np.ndarray]:
    """Each block's slice of the per-cell scale."""
    return [scale[b.row_start : b.row_stop] for b in blocks]


# ----------------------------------------------------------------------------- pass 3 and PCA


def gram_pass(
    ctx: PassContext, hvg: np.ndarray, scale: np.ndarray, stored: np.ndarray, keep_budget_mb: float
) -> tuple[np.ndarray, np.ndarray, KeptValues]:
    """Pass 3: the Gram matrix and column sums of the HVGs' scaled values.  Each worker keeps its
    blocks' values for pass 4, in memory up to its share of ``keep_budget_mb``, past it on its
    local disk."""
    client, width = ctx.client, int(hvg.sum())
    values_mb = kept_mb(hvg, stored, ctx.stored_x.n_obs)
    block_scales = scales(scale, ctx.blocks)
    kept = KeptValues(ctx, block_scales, client.scatter(hvg_positions(hvg), broadcast=True))
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    groups = task_groups(len(ctx.blocks), n_workers)
    with ctx.costs.step(
        STEP_GRAM,
        f"pass 3: Gram matrix of {width} HVGs; their values, {values_mb:.0f} MB, kept on "
        f"the workers for pass 4 ({keep_budget_mb:g} MB in memory, the rest on local disk)",
    ):
        budget_bytes = keep_budget_mb * 2**20 / n_workers
        total = add_grams([submit_gram(kept, g, width, budget_bytes) for g in groups], groups, kept)
        gram, sums = total.total()
        log.info(
            "HVG values kept for pass 4: %.0f MB in memory, %.0f MB on local disk",
            total.kept["memory"] / 2**20,
            total.kept["disk"] / 2**20,
        )
    return gram, sums, kept


def hvg_positions(hvg: np.ndarray) -> np.ndarray:
    """Each gene's column among the HVGs, -1 for the other genes: how the tasks pick the HVGs'
    values out of X's rows."""
    position = np.full(len(hvg), -1, dtype=np.int32)
    position[hvg] = np.arange(int(hvg.sum()), dtype=np.int32)
    return position


def kept_mb(hvg: np.ndarray, stored: np.ndarray, n_obs: int) -> float:
    """What the HVG values kept for pass 4 weigh, in MB: each value with its column (6 bytes, 8
    from 65535 HVGs on, whose columns no longer fit 16 bits), and a row pointer a cell."""
    width = int(hvg.sum())
    return (int(stored[hvg].sum()) * (6 if width < 65535 else 8) + 8 * n_obs) / 2**20


def task_groups(n_blocks: int, n_workers: int) -> list[np.ndarray]:
    """Consecutive blocks in up to four pass-3 tasks a worker: a few n_hvg^2 Gram matrices for
    the driver to add up instead of one per block, and tasks enough to share out."""
    return np.array_split(np.arange(n_blocks), min(n_blocks, 4 * n_workers))


def submit_gram(kept: KeptValues, group: np.ndarray, width: int, budget_bytes: float):
    """The pass-3 task of the blocks ``group``: their Gram matrix, their values kept."""
    ctx = kept.ctx
    return ctx.client.submit(
        task_gram,
        ctx.stored_x.location,
        [ctx.blocks[i] for i in group],
        group.tolist(),
        [kept.block_scales[i] for i in group],
        position=kept.positions,
        width=width,
        token=kept.token,
        budget_bytes=budget_bytes,
        kind=ctx.kept_kind,
        pure=False,
    )


def add_grams(futures: Sequence, groups: Sequence[np.ndarray], kept: KeptValues) -> GramPart:
    """The tasks' Gram parts added in submission order, noting which worker keeps each block's
    values in ``kept.holders``."""
    total = None
    try:
        for g, part in in_order(futures):
            kept.holders.update(dict.fromkeys(groups[g].tolist(), part.holder))
            total = part if total is None else total.__iadd__(part)
    except BaseException:  # what the finished tasks kept would stay on the workers
        kept.release()
        raise
    return total


def fit_pca(gram: np.ndarray, sums: np.ndarray, n_comps: int, kept: KeptValues) -> PcaFit:
    """The PCA from pass 3's Gram matrix (overwritten) and column sums."""
    ctx = kept.ctx
    try:
        with ctx.costs.step(STEP_EIGH, f"PCA: {n_comps} eigenpairs of {len(sums)}"):
            return pca_from_gram(gram, sums, ctx.stored_x.n_obs, n_comps)
    except BaseException:  # pass 4 will not run to release what pass 3 kept
        kept.release()
        raise


# ----------------------------------------------------------------------------- pass 4


def project_kept(kept: KeptValues, fit: PcaFit, array: zarr.Array) -> None:
    """Pass 4: each cell's values projected onto the components, from the values pass 3 kept
    (X is not decoded a third time), streamed into ``array`` in row order, centred; then the
    workers drop the kept values, whether the pass succeeded or not."""
    ctx = kept.ctx
    loadings = fit.components.T.copy()
    try:
        with ctx.costs.step(STEP_PROJECTION, "pass 4, from the values pass 3 kept"):
            futures = submit_projections(kept, ctx.client.scatter(loadings, broadcast=True))
            writer = RowWriter(array, fit.mean @ loadings)
            for future, block in zip(futures, ctx.blocks, strict=True):
                writer.add(block.row_start, future.result())
                future.release()
            writer.close()
    finally:
        kept.release()


def submit_projections(kept: KeptValues, loadings) -> list:
    """One pass-4 task a block, on the worker that keeps its values; should that worker be gone,
    another reads the block's X again."""
    ctx = kept.ctx
    return [
        ctx.client.submit(
            task_project_kept,
            kept.token,
            i,
            ctx.stored_x.location,
            block,
            block_scale,
            position=kept.positions,
            loadings=loadings,
            kind=ctx.kept_kind,
            workers=[kept.holders[i]] if kept.holders[i] else None,
            allow_other_workers=True,
            pure=False,
        )
        for i, (block, block_scale) in enumerate(zip(ctx.blocks, kept.block_scales, strict=True))
    ]
