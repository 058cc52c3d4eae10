"""The passes over X on a Dask cluster: library sizes, moments and HVGs, the Gram matrix and the
PCA, then the projection streamed in row order.  Partial results are added in submission order,
so results are identical from run to run."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import zarr

from chunkatlas.analysis._checks import refuse_problems
from chunkatlas.analysis._metering import StepCosts
from chunkatlas.analysis.fused._hvg import (
    dispersion_table,
    mean_var,
    seurat_v3_clip,
    seurat_v3_table,
)
from chunkatlas.analysis.fused._pca import PcaFit, pca_from_gram
from chunkatlas.analysis.fused._plan import LIBRARY_COLUMN, Block, Layout, work_dtype
from chunkatlas.analysis.fused._tasks import (
    GramPart,
    clear_stash,
    task_clipped,
    task_count_moments,
    task_gram,
    task_library_sizes,
    task_moments,
    task_project_kept,
)
from chunkatlas.config import FLAVORS
from chunkatlas.errors import ChunkatlasError
from chunkatlas.store._location import open_on_workers

if TYPE_CHECKING:  # the workers never import pandas or scipy.sparse: they start faster
    import pandas as pd


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


def sum_results(futures: Sequence) -> tuple | GramPart:
    """Sum of what ``futures`` return (tuples of arrays element-wise), in submission order."""
    total = None
    for _, part in in_order(futures):
        if isinstance(part, tuple):
            part = (
                list(part) if total is None else [a + b for a, b in zip(total, part, strict=True)]
            )
            total = part
        elif total is None:
            total = part
        else:
            total += part
    return tuple(total) if isinstance(total, list) else total


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


@dataclass
class FusedResult:
    """What the passes computed, before the projection is written."""

    var: pd.DataFrame
    hvg: np.ndarray
    fit: PcaFit
    costs: StepCosts


def select_hvgs(
    client,
    layout: Layout,
    blocks: list[Block],
    flavor: str,
    n_top_genes: int,
    costs: StepCosts,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Passes 1 and 2: the HVG table, per-cell scale and per-gene stored counts.  Where the
    store's obs records each cell's library size (``raw_sum``), seurat and cell_ranger skip
    pass 1: pass 2 computes the row sums anyway and, should they differ, runs again with
    them."""
    store, n_obs, n_vars = layout.location, layout.n_obs, layout.n_vars
    dtype = work_dtype(layout.dtype)
    if flavor == "seurat_v3":
        with costs.step("count_moments", "pass 1: library sizes and moments of the counts"):
            futures = client.map(
                task_count_moments, [store] * len(blocks), blocks, n_vars=n_vars, pure=False
            )
            library, sums, squares, stored = gather_rows(futures, blocks, layout, integers=True)
        mean, var = mean_var(sums, squares, n_obs)
        with costs.step("loess", "seurat_v3 variance fit"):
            reg_std, clip = seurat_v3_clip(mean, var, n_obs)
        with costs.step("clipped_moments", "pass 2: moments of the clipped counts"):
            clipped = sum_results(
                client.map(
                    task_clipped,
                    [store] * len(blocks),
                    blocks,
                    clip=client.scatter(clip, broadcast=True),
                    pure=False,
                )
            )
        table = seurat_v3_table(mean, var, reg_std, *clipped, n_obs, n_top_genes)
        return table, library_scale(library, dtype), stored
    recorded = layout.library
    if recorded is None:
        with costs.step("library_sizes", "pass 1"):
            futures = client.map(task_library_sizes, [store] * len(blocks), blocks, pure=False)
            (library,) = gather_rows(futures, blocks, layout, integers=False)
    else:  # no pass for what the store records; pass 2 checks it
        log.info("library sizes: obs %r of the store (checked in pass 2)", LIBRARY_COLUMN)
        library = recorded
    kind = "log1p_expm1" if flavor == "seurat" else "log1p"
    step = "moments"
    while True:
        with costs.step(step, f"pass 2: moments of the normalised values, {kind}"):
            futures = client.map(
                task_moments,
                [store] * len(blocks),
                blocks,
                scales(library_scale(library, dtype), blocks),
                kind=kind,
                n_vars=n_vars,
                pure=False,
            )
            own, sums, squares, stored = gather_rows(futures, blocks, layout, integers=False)
        if np.array_equal(own, library):
            break
        first = int(np.flatnonzero(own != library)[0])
        log.warning(
            "obs %r of cell %d is %r, X's row sum %r: pass 2 again with X's own library sizes",
            LIBRARY_COLUMN,
            first,
            library[first],
            own[first],
        )
        library, step = own, "moments_again"
    scale = library_scale(library, dtype)
    mean, var = mean_var(sums, squares, n_obs)
    return dispersion_table(mean, var, flavor, n_top_genes), scale, stored


def gather_rows(
    futures: Sequence, blocks: Sequence[Block], layout: Layout, *, integers: bool
) -> tuple:
    """Library sizes (shared rows added up) and any summed per-gene moments from the futures of
    a pass whose tasks return (row sums, problem counts, *moments), after refusing X if it
    holds values that are not counts."""
    library = np.zeros(layout.n_obs, dtype=np.float64)
    problems = np.zeros(3, dtype=np.int64)
    totals: list = []
    for index, (rows, found, *parts) in in_order(futures):
        block = blocks[index]
        library[block.row_start : block.row_stop] += rows
        problems += found
        totals = parts if not totals else [a + b for a, b in zip(totals, parts, strict=True)]
    refuse_problems(problems, integers=integers, where=layout.location)
    return (library, *totals)


def scales(scale: np.ndarray, blocks: Sequence[Block]) -> list[np.ndarray]:
    """Each block's slice of the per-cell scale."""
    return [scale[b.row_start : b.row_stop] for b in blocks]


def run_passes(
    client,
    layout: Layout,
    blocks: list[Block],
    *,
    flavor: str,
    n_top_genes: int,
    n_comps: int,
    keep_budget_mb: float = KEEP_MB,
) -> tuple[FusedResult, Callable]:
    """Passes 1-3 and the PCA on the cluster of ``client``.

    Returns the result and a function that runs pass 4, streaming the projection into a zarr
    array of n_obs x n_comps float32, and then releases the HVG values kept on the workers.
    """
    if flavor not in FLAVORS:
        raise ChunkatlasError(f"HVG flavor {flavor!r} is not one of {', '.join(FLAVORS)}")
    costs = StepCosts(client)
    store = layout.location
    with costs.step("open", "each worker opens the store"):
        open_on_workers(client, store)
    table, scale, stored = select_hvgs(client, layout, blocks, flavor, n_top_genes, costs)
    hvg = table["highly_variable"].to_numpy()
    width = int(hvg.sum())
    if n_comps >= width:
        raise ChunkatlasError(f"n_comps {n_comps} must be below the number of HVGs ({width})")
    position = np.full(layout.n_vars, -1, dtype=np.int32)
    position[hvg] = np.arange(width, dtype=np.int32)
    hvg_values_mb = (
        int(stored[hvg].sum()) * (6 if width < 65535 else 8) + 8 * layout.n_obs
    ) / 2**20
    block_scales = scales(scale, blocks)
    positions = client.scatter(position, broadcast=True)
    token = uuid.uuid4().hex  # names this analysis's HVG values in the workers' stashes
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    groups = np.array_split(np.arange(len(blocks)), min(len(blocks), 4 * n_workers))
    holders: dict[int, str | None] = {}
    with costs.step(
        "gram",
        f"pass 3: Gram matrix of {width} HVGs; their values, {hvg_values_mb:.0f} MB, kept on "
        f"the workers for pass 4 ({keep_budget_mb:g} MB in memory, the rest on local disk)",
    ):
        grams = [
            client.submit(
                task_gram,
                store,
                [blocks[i] for i in group],
                group.tolist(),
                [block_scales[i] for i in group],
                position=positions,
                width=width,
                token=token,
                budget_bytes=keep_budget_mb * 2**20 / n_workers,
                pure=False,
            )
            for group in groups
        ]
        total = None
        try:
            for g, part in in_order(grams):
                holders.update(dict.fromkeys(groups[g].tolist(), part.holder))
                total = part if total is None else total.__iadd__(part)
        except BaseException:  # what the finished tasks kept would stay on the workers
            client.run(clear_stash, token)
            raise
        gram, sums = total.total()
        log.info(
            "HVG values kept for pass 4: %.0f MB in memory, %.0f MB on local disk",
            total.kept["memory"] / 2**20,
            total.kept["disk"] / 2**20,
        )
    try:
        with costs.step("eigh", f"PCA: {n_comps} eigenpairs of {width}"):
            fit = pca_from_gram(gram, sums, layout.n_obs, n_comps)
    except BaseException:
        client.run(clear_stash, token)
        raise
    del gram

    def project(array: zarr.Array) -> None:
        loadings = fit.components.T.copy()
        try:
            with costs.step("projection", "pass 4, from the values pass 3 kept"):
                shared = client.scatter(loadings, broadcast=True)
                futures = [
                    client.submit(
                        task_project_kept,
                        token,
                        i,
                        store,
                        block,
                        block_scale,
                        position=positions,
                        loadings=shared,
                        # where the values are; elsewhere (that worker gone) X is read again
                        workers=[holders[i]] if holders[i] else None,
                        allow_other_workers=True,
                        pure=False,
                    )
                    for i, (block, block_scale) in enumerate(zip(blocks, block_scales, strict=True))
                ]
                writer = RowWriter(array, fit.mean @ loadings)
                for future, block in zip(futures, blocks, strict=True):
                    writer.add(block.row_start, future.result())
                    future.release()
                writer.close()
        finally:
            client.run(clear_stash, token)

    return FusedResult(table, hvg, fit, costs), project
