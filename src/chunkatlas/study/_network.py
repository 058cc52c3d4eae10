"""The emulated network between a reader and the loopback servers: latency to the first byte and
bandwidth per response, since loopback makes every request free."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from chunkatlas._schema import default
from chunkatlas.errors import ChunkatlasError

MARK_PREFIX = "/__mark__/"  # requests that separate patterns in the log; never delayed


def pacing_after_marker(query: str, paced: bool) -> bool:
    """Whether a server emulates its network after a marker request with ``query``: ``pace=off``
    stops it, ``pace=on`` starts it again, anything else keeps ``paced``.  A study reads
    uncounted (its warm-up, the open before each cold read) unpaced: those sleeps measure
    nothing.  Servers start paced."""
    for part in query.split("&"):
        if part in ("pace=on", "pace=off"):
            return part == "pace=on"
    return paced


@dataclass(frozen=True)
class Network:
    """An emulated network between the reader and the server.

    ``latency_ms`` passes before each answer starts (time to first byte); ``bandwidth_mbps``
    (megabits per second, None: loopback speed) paces each response's body on its own, as one
    TCP stream would: concurrent responses each get the full bandwidth, so the reader's own
    concurrency still pays off, as it does against an object store.  Only reads (GET, HEAD)
    are slowed; marker requests never are.

    aiohttp and the S3 server pay a response's whole delay, latency plus transfer, before its
    first byte; nginx paces the body itself (:func:`nginx_network`).  A reader that waits for
    whole bodies, as zarr's does, sees the same time either way.

    The defaults are loopback's, no emulation (:data:`LOOPBACK`); the config's default network
    (``remote.latency_ms``, ``remote.bandwidth_mbps``) is :data:`OBJECT_STORE`'s.
    """

    latency_ms: float = 0
    bandwidth_mbps: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.latency_ms < float("inf"):
            raise ChunkatlasError(f"network latency_ms must be 0 or more, got {self.latency_ms}")
        if self.bandwidth_mbps is not None and not 0 < self.bandwidth_mbps < float("inf"):
            raise ChunkatlasError(
                f"network bandwidth_mbps must be above 0 (or None), got {self.bandwidth_mbps}"
            )

    @property
    def bytes_per_second(self) -> float | None:
        return None if self.bandwidth_mbps is None else self.bandwidth_mbps * 1e6 / 8

    def seconds(self, body_bytes: int) -> float:
        """How long an answer with ``body_bytes`` takes to arrive: latency plus transfer."""
        rate = self.bytes_per_second
        return self.latency_ms / 1000 + (body_bytes / rate if rate else 0.0)

    def arguments(self) -> list[str]:
        """Command-line options of the server subprocesses (see :func:`add_network_arguments`)."""
        args = ["--latency-ms", repr(self.latency_ms)]
        if self.bandwidth_mbps is not None:
            args += ["--bandwidth-mbps", repr(self.bandwidth_mbps)]
        return args


LOOPBACK = Network()  # no emulation: what loopback gives


# A public object store read from outside its data centre.  Latency: AWS's S3 performance
# whitepaper ("Timeouts and retries for latency-sensitive applications") gives median latencies
# of small GETs (< 512 KB) "often in the range of tens of milliseconds"; 30 ms sits there.
# Bandwidth: a cautious guess for one TCP stream over the internet, below what AWS suggests
# planning per connection inside a region (of the order of 85-90 MB/s, ~700 Mbit/s); 160 Mbit/s
# is 20 MB/s.  Neither number is a measurement of any particular service.
OBJECT_STORE = Network(
    latency_ms=default("remote.latency_ms"), bandwidth_mbps=default("remote.bandwidth_mbps")
)


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--bandwidth-mbps", type=float, default=None)


def network_from(args: argparse.Namespace) -> Network:
    return Network(args.latency_ms, args.bandwidth_mbps)
