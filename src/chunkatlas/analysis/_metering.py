"""What each step of an analysis costs: seconds, and the requests, bytes and retries of its
reads, wherever they ran (the Dask workers, or the driver when there is no cluster); and the
workers' peak memory over the analysis."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from chunkatlas.logs import timed
from chunkatlas.store._counting import Reads, take_reads

log = logging.getLogger(__name__)

#: The measures of one step, as recorded in ``uns['chunkatlas']['passes']`` and the summary.
MEASURES = ("requests", "bytes", "seconds", "retries")


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


class StepCosts:
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
