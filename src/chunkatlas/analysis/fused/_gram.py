"""Pass 3 and the PCA: the Gram matrix and column sums of the HVGs' scaled values, each worker
keeping its blocks' values for pass 4 (:class:`KeptValues`), then the eigenpairs of the
covariance."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from chunkatlas.analysis._metering import STEP_EIGH, STEP_GRAM
from chunkatlas.analysis.fused._context import PassContext, in_order, scales
from chunkatlas.analysis.fused._pca import PcaFit, pca_from_gram
from chunkatlas.analysis.fused._tasks import GramPart, clear_stash, task_gram

log = logging.getLogger(__name__)

#: Memory (all workers together) for the HVG values kept between pass 3 and pass 4; the rest
#: go to the workers' local disks.
KEEP_MB = 128


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
