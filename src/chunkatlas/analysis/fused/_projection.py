"""Pass 4: each cell's values projected onto the components, from the values pass 3 kept,
streamed into the result in row order."""

from __future__ import annotations

import numpy as np
import zarr

from chunkatlas.analysis._metering import STEP_PROJECTION
from chunkatlas.analysis.fused._gram import KeptValues
from chunkatlas.analysis.fused._pca import PcaFit
from chunkatlas.analysis.fused._tasks import task_project_kept


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
