"""Counting what a process reads from stores: requests, bytes and retries.

Every store the analysis opens (local, or remote through the guarded reader) adds its reads to
one counter per process; the driver takes the workers' counters after each pass
(:mod:`chunkatlas.analysis._metering`), so each pass's cost is what it read, wherever it ran.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from zarr.abc.store import Store
from zarr.storage import WrapperStore


@dataclass
class Reads:
    """Reads issued to stores: ``requests`` (each attempt, a failed one too), ``bytes``
    received, and ``retries`` (attempts after a request's first)."""

    requests: int = 0
    bytes: int = 0
    retries: int = 0

    def __add__(self, other: Reads) -> Reads:
        return Reads(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, int, int]:
        return self.requests, self.bytes, self.retries

    def asdict(self) -> dict[str, int]:
        return asdict(self)


_counted = Reads()
_lock = threading.Lock()  # zarr's I/O thread and the task threads add concurrently


def count_read(*, requests: int = 0, nbytes: int = 0, retries: int = 0) -> None:
    with _lock:
        _counted.requests += requests
        _counted.bytes += nbytes
        _counted.retries += retries


def take_reads() -> tuple[int, Reads]:
    """(this process's id, what it read since the last take); the counter starts again."""
    global _counted
    with _lock:
        taken, _counted = _counted, Reads()
    return os.getpid(), taken


def size_of(value) -> int:
    return 0 if value is None else len(value)


class CountedStore(WrapperStore):
    """A read-only view of a store that counts each read (one request per object or range)."""

    async def get(self, key, prototype, byte_range=None):
        value = await self._store.get(key, prototype, byte_range)
        count_read(requests=1, nbytes=size_of(value))
        return value

    def get_sync(self, key, *, prototype=None, byte_range=None):  # zarr's synchronous path
        value = self._store.get_sync(key, prototype=prototype, byte_range=byte_range)
        count_read(requests=1, nbytes=size_of(value))
        return value

    async def get_partial_values(self, prototype, key_ranges):
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    async def get_ranges(self, key, byte_ranges: Sequence, *, prototype, **options):
        # zarr's coalescing over self.get (the wrapped store's own would not be counted)
        given = {name: value for name, value in options.items() if value is not None}
        async for group in Store.get_ranges(self, key, byte_ranges, prototype=prototype, **given):
            yield group

    async def _get_many(self, requests):
        for key, prototype, byte_range in requests:
            yield key, await self.get(key, prototype, byte_range)
