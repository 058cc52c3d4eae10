"""seurat_v3 and seurat_v3_paper select on the counts: pass 1, the moments of the counts with
the library sizes (per batch, one task a batch carrying scanpy's Welford recurrence, or block by
block); the loess fit of each batch's variance; pass 2, the moments of the clipped counts."""

from __future__ import annotations

import logging

import numpy as np

from chunkatlas.analysis._checks import refuse_problems
from chunkatlas.analysis._metering import STEP_CLIPPED_MOMENTS, STEP_COUNT_MOMENTS, STEP_LOESS
from chunkatlas.analysis.fused._context import (
    PassContext,
    add_parts,
    batch_named,
    gather_rows,
    in_order,
    submit_per_batch,
    sum_results,
)
from chunkatlas.analysis.fused._hvg import (
    batch_mean_var,
    mean_var,
    normalised_variance,
    seurat_v3_clip,
    seurat_v3_columns,
    welford_mean_var,
)
from chunkatlas.analysis.fused._library import library_scale
from chunkatlas.analysis.fused._plan import work_dtype
from chunkatlas.analysis.fused._tasks import (
    task_batch_clipped,
    task_batch_clipped_rows,
    task_batch_count_moments,
    task_clipped,
    task_count_moments,
)

log = logging.getLogger(__name__)


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
            "ranks (as scanpy on Dask's do); more cells per task (--task-cells) avoid it",
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
