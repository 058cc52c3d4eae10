"""What each step of an analysis costs: seconds, and the requests, bytes and retries of its
reads, wherever they ran (the Dask workers, or the driver when there is no cluster)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from chunkatlas.logs import timed
from chunkatlas.store.counted import Reads, take_reads

log = logging.getLogger(__name__)

#: The measures of one step, as recorded in ``uns['chunkatlas']['passes']`` and the summary.
MEASURES = ("requests", "bytes", "seconds", "retries")


def take_cluster_reads(client=None) -> Reads:
    """What the workers of ``client`` read since the last take (None: this process).  Each
    take empties a process's counter, so workers sharing a process are counted once."""
    if client is None:
        return take_reads()[1]
    return sum((reads for _, reads in client.run(take_reads).values()), Reads())


class StepCosts:
    """Seconds and reads per step: ``seconds`` (step -> s) and ``passes`` (step -> the
    :data:`MEASURES`)."""

    def __init__(self, client=None) -> None:
        self.client = client
        self.seconds: dict[str, float] = {}
        self.passes: dict[str, dict[str, float]] = {}

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
