"""What a read cost, counted: the loopback servers' request log read between marker requests
(:class:`RequestLog`), or the reader's own count where no server log can be read
(:class:`ReaderCount`: the workflow's own bucket), and how many requests were in flight."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

from chunkatlas.store import take_reads
from chunkatlas.study._network import MARK_PREFIX


class RequestLog:
    """The server's JSON-lines request log, read between marker requests.

    Every server here (HTTP or S3) answers ``base_url`` + :data:`MARK_PREFIX` + n itself, with
    no delay, and logs it: the entries between two markers are one read's traffic.
    """

    def __init__(self, path: str | os.PathLike, base_url: str) -> None:
        self.path = Path(path)
        self.base_url = base_url
        self.count = 0

    def mark(self, pace: bool | None = None, timeout: float = 10.0) -> list[dict]:
        """Entries logged since the previous mark (the marker requests themselves excluded).
        ``pace``: the server emulates its network from here on (True) or not (False); None
        leaves it as it is (nginx always paces)."""
        self.count += 1
        name = f"{MARK_PREFIX}{self.count}"
        query = "" if pace is None else f"?pace={'on' if pace else 'off'}"
        with urllib.request.urlopen(self.base_url + name + query, timeout=timeout):
            pass
        deadline = time.monotonic() + timeout
        while True:
            entries = [json.loads(line) for line in self.path.read_text().splitlines() if line]
            at = [i for i, e in enumerate(entries) if e["path"] == name]
            if at or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        before = f"{MARK_PREFIX}{self.count - 1}"
        previous = [i for i, e in enumerate(entries) if e["path"] == before]
        start = previous[0] + 1 if previous else 0
        return [e for e in entries[start : at[0]] if not e["path"].startswith(MARK_PREFIX)]

    def traffic(self, pace: bool | None = None) -> tuple[int, int]:
        """(requests, bytes) the server answered since the previous mark (``pace``: as for
        :meth:`mark`)."""
        entries = self.mark(pace)
        return len(entries), sum(e["bytes"] for e in entries)


class ReaderCount:
    """Requests and bytes counted by the reader itself (:mod:`chunkatlas.store._counting`),
    for a store whose server keeps no log we can read: the workflow's own bucket."""

    def mark(self, pace: bool | None = None) -> None:
        take_reads()  # the bucket's network is real: nothing to pace

    def traffic(self, pace: bool | None = None) -> tuple[int, int]:
        _, reads = take_reads()
        return reads.requests, reads.bytes


def peak_in_flight(entries: list[dict]) -> int:
    """The most requests the server was answering at once, from the log's end and seconds."""
    events = sorted(
        (t, step) for e in entries for t, step in ((e["end"] - e["seconds"], 1), (e["end"], -1))
    )  # at equal times an end (-1) sorts before a start: touching requests do not overlap
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak
