"""Where one remote job's seconds go: the fixed cost around the measured reads.

    python -m benchmarks.job_overhead STORE [--backend http --backend s3] [--repeats 1]

STORE is a finished store (``T/G/store.zarr`` with its manifest beside it, e.g. from a default
run).  Prints, for one job of the ``remote`` rule as scripts/remote.py runs it:

* imports: a fresh interpreter importing what the job script imports (wall seconds);
* verify: the local store checked against its manifest;
* per backend: server start (until its URL is known), S3 upload, the warm-up read, the
  uncounted opens before each pattern, the measured reads (their own seconds), the markers,
  server stop;
* decode: X decoded once locally;
* CPU seconds of this process and of its children (the servers), and wall seconds in all.

The phases are timed by wrapping the study's own functions; nothing is read differently.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

IMPORTS = (
    "from chunkatlas.logs import one_line_interrupts, run_snakemake_step\n"
    "from chunkatlas.store import verify_store\n"
    "from chunkatlas.study import Network, measure_backends\n"
)


def import_seconds() -> float:
    """Wall seconds of a fresh interpreter that imports what scripts/remote.py imports, less an
    empty interpreter's."""

    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    return min(run(IMPORTS) for _ in range(3)) - min(run("pass") for _ in range(3))


class Phases:
    """Seconds per phase, summed over calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    @contextlib.contextmanager
    def timed(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start
            self.calls[name] += 1

    def wrap(self, module, attribute: str, name: str, context: bool = False) -> None:
        original = getattr(module, attribute)
        phases = self

        if context:

            @contextlib.contextmanager
            def wrapped(*args, **kwargs):
                with phases.timed(name), original(*args, **kwargs) as value:
                    start = time.perf_counter()
                    yield value
                    phases.seconds[name] -= time.perf_counter() - start  # only start and stop

        else:

            def wrapped(*args, **kwargs):
                with phases.timed(name):
                    return original(*args, **kwargs)

        setattr(module, attribute, wrapped)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", type=Path)
    parser.add_argument("--backend", action="append", dest="backends")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=30)
    parser.add_argument("--bandwidth-mbps", type=float, default=160)
    parser.add_argument("--no-imports", action="store_true", help="skip the import timing")
    args = parser.parse_args()
    backends = args.backends or ["http", "s3"]
    if not args.no_imports:
        print(f"imports (fresh interpreter)  {import_seconds():7.2f} s")

    wall = time.perf_counter()
    cpu = time.process_time()
    import chunkatlas.rewrite
    from chunkatlas.store import RemoteSettings, verify_store
    from chunkatlas.study import Network, _http, _measure, _s3, _server_process, measure_backends

    phases = Phases()
    with phases.timed("verify"):
        verify_store(args.store, args.store.with_name("store.manifest.json"))
    phases.wrap(_measure, "served", "serve: start + upload + stop", context=True)
    phases.wrap(_http, "process_serving", "  http server start + stop", context=True)
    phases.wrap(_s3, "process_serving", "  s3 server start + stop", context=True)
    phases.wrap(_measure, "open_remote_group", "  open_remote_group (all opens)")
    phases.wrap(_measure, "read_pattern", "pattern reads (measured)")
    phases.wrap(_measure.RequestLog, "mark", "markers + log parsing")
    marks: list[tuple[float, float, bool | None]] = []  # (called, returned, pace)
    timed_mark = _measure.RequestLog.mark

    def mark(self, pace=None, *args, **kwargs):
        called = time.perf_counter()
        try:
            return timed_mark(self, pace, *args, **kwargs)
        finally:
            marks.append((called, time.perf_counter(), pace))

    _measure.RequestLog.mark = mark
    phases.wrap(chunkatlas.rewrite, "decode_pass_seconds", "decode")
    phases.wrap(_measure, "run_patterns", "run_patterns (all reads)")
    server_cpu: list[tuple[str, float]] = []
    stop = _server_process.stop_process

    def stop_process(process, *args, **kwargs):
        server_cpu.append((" ".join(process.args[-6:-4]), process_cpu(process.pid)))
        return stop(process, *args, **kwargs)

    _server_process.stop_process = stop_process
    table = measure_backends(
        args.store,
        backends=backends,
        network=Network(args.latency_ms, args.bandwidth_mbps),
        settings=RemoteSettings(),
        repeats=args.repeats,
    )
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    # between markers: reads after pace=on are measured, after pace=off uncounted (the warm-up
    # and the opens before each read); a marker with pace None ends a backend's reads
    between: dict[str, float] = defaultdict(float)
    for (_, returned, pace), (called, _, _) in zip(marks, marks[1:], strict=False):
        if pace is not None:
            between["  measured reads" if pace else "  uncounted reads (warm-up, opens)"] += (
                called - returned
            )
    for name, seconds in [*phases.seconds.items(), *between.items()]:
        print(f"{name:36s} {seconds:7.2f} s  ({phases.calls[name]} calls)")
    measured = table.groupby("backend", sort=False)["seconds"].sum()
    for backend, seconds in measured.items():
        print(f"measured seconds, {backend:4s} (table)       {seconds:7.2f} s")
    print(f"in-process wall                      {wall:7.2f} s")
    for name, seconds in server_cpu:
        print(f"CPU of server {name}: {seconds:.2f} s")
    print(f"CPU: this process {cpu:.2f} s, servers {children.ru_utime + children.ru_stime:.2f} s")
    print(table[["pattern", "backend", "requests", "bytes", "seconds"]].to_string(index=False))


if __name__ == "__main__":
    main()
