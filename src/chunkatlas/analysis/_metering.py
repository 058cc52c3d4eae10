"""What each step of an analysis costs: seconds, and the requests, bytes and retries of its
reads, wherever they ran (the Dask workers, or the driver when there is no cluster); and the
workers' peak memory over the analysis."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from chunkatlas.logs import timed
from chunkatlas.store import Reads, take_reads

log = logging.getLogger(__name__)

#: The measures of one step, as recorded in ``uns['chunkatlas']['passes']`` and the summary.
MEASURES = ("requests", "bytes", "seconds", "retries")

# The names of the steps, the keys of ``uns['chunkatlas']['seconds']`` and ``['passes']``: the
# summary's columns and the report's order (``chunkatlas.report.PASSES``) follow them.
STEP_OPEN = "open"  # both engines: each worker opens the store
STEP_LIBRARY_SIZES = "library_sizes"  # fused, pass 1 (seurat, cell_ranger)
STEP_COUNT_MOMENTS = "count_moments"  # fused, pass 1 (seurat_v3)
STEP_LOESS = "loess"  # fused, seurat_v3's variance fit
STEP_CLIPPED_MOMENTS = "clipped_moments"  # fused, pass 2 (seurat_v3)
STEP_MOMENTS = "moments"  # fused, pass 2 (seurat, cell_ranger)
STEP_MOMENTS_AGAIN = "moments_again"  # fused, pass 2 again when obs's library sizes are wrong
STEP_GRAM = "gram"  # fused, pass 3
STEP_EIGH = "eigh"  # fused, the PCA from the Gram matrix
STEP_PROJECTION = "projection"  # fused, pass 4
STEP_CHECK_COUNTS = "check_counts"  # scanpy engine (the fused engine checks in pass 1)
STEP_NORMALIZE_TOTAL = "normalize_total"  # scanpy engine
STEP_LOG1P = "log1p"  # scanpy engine
STEP_HIGHLY_VARIABLE_GENES = "highly_variable_genes"  # scanpy engine
STEP_PCA = "pca"  # scanpy engine

#: The fused engine's steps in the order they run (a run takes one of the two routes to HVGs).
FUSED_STEPS = (
    STEP_OPEN,
    STEP_LIBRARY_SIZES,
    STEP_COUNT_MOMENTS,
    STEP_LOESS,
    STEP_CLIPPED_MOMENTS,
    STEP_MOMENTS,
    STEP_MOMENTS_AGAIN,
    STEP_GRAM,
    STEP_EIGH,
    STEP_PROJECTION,
)
#: The scanpy engine's steps in the order they run (seurat_v3 selects the HVGs first, on the
#: counts).
SCANPY_STEPS = (
    STEP_OPEN,
    STEP_CHECK_COUNTS,
    STEP_NORMALIZE_TOTAL,
    STEP_LOG1P,
    STEP_HIGHLY_VARIABLE_GENES,
    STEP_PCA,
)


def take_cluster_reads(client=None) -> Reads:
    """What the workers of ``client`` read since the last take (None: this process).  Each
    take empties a process's counter, so workers sharing a process are counted once."""
    if client is None:
        return take_reads()[1]
    return sum((reads for _, reads in client.run(take_reads).values()), Reads())


def reset_peak_memory() -> None:
    """Start this process's peak resident memory (Linux's VmHWM) again from now."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:  # not Linux, or not allowed: the peak is then the process's lifetime's
        pass


def peak_memory_mb() -> float | None:
    """This process's peak resident memory in MB (None where the system does not say)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class StepMeter:
    """Seconds and reads per step: ``seconds`` (step -> s) and ``passes`` (step -> the
    :data:`MEASURES`); and :meth:`workers_peak_mb`.  A cluster's workers may have run other
    analyses before (the workflow run's shared cluster), so their peaks start again here."""

    def __init__(self, client=None) -> None:
        self.client = client
        self.seconds: dict[str, float] = {}
        self.passes: dict[str, dict[str, float]] = {}
        if client is not None:
            client.run(reset_peak_memory)

    def workers_peak_mb(self) -> float | None:
        """The workers' peak resident memory since this analysis began, summed over them."""
        if self.client is None:
            return None
        peaks = list(self.client.run(peak_memory_mb).values())
        return None if None in peaks else round(sum(peaks), 1)

    @contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[None]:
        """Time the step ``name`` (logged with ``detail``) and count what it read."""
        take_cluster_reads(self.client)  # what came before is not this step's
        with timed(name, self.seconds, detail):
            yield
        reads = take_cluster_reads(self.client)
        self.passes[name] = {**reads.asdict(), "seconds": self.seconds[name]}
        if reads.requests:
            log.info(
                "%s read %d requests, %.1f MB, %d retries",
                name,
                reads.requests,
                reads.bytes / 1e6,
                reads.retries,
            )
