"""What every pass shares: the :class:`PassContext` of an analysis (the cluster, X as stored,
the tasks' blocks, the batches, the meter of the steps), submitting one task a block or a batch,
and adding the tasks' partial results in submission order, so results are identical from run to
run."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from chunkatlas.analysis._checks import refuse_problems
from chunkatlas.analysis._metering import StepMeter
from chunkatlas.analysis.fused._plan import Block, StoredX
from chunkatlas.analysis.fused._tasks import BlockBatches, PerBatch

if TYPE_CHECKING:
    from chunkatlas.analysis._batches import Batches


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


#: seurat_v3's passes with batches run one task per batch, carrying scanpy's Welford recurrence
#: (and its sums of clipped counts) through the batch's blocks in row order, while that decodes
#: few blocks more than once: a block is decoded once per batch among its cells, so batches as
#: large as the tasks or larger (a Census tissue's datasets) cost little.  Past this many extra
#: decodes, as a share of the blocks (and at least MIN_EXTRA_DECODES), the batches' moments are
#: summed block by block instead (batches smaller than the tasks, or interleaved).
EXTRA_DECODES = 0.5
MIN_EXTRA_DECODES = 4


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


def batch_named(ctx: PassContext, index: int) -> str:
    """Where a per-batch failure happened, for its message ('' without batches)."""
    if ctx.batches is None:
        return ""
    return f" in batch {ctx.batches.names[index]!r} of batch_key {ctx.batches.key!r}"


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
