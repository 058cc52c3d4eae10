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

The phases are the cumulative seconds of the study's own functions in a profile of the job's
main thread; nothing is read differently.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path

IMPORTS = (
    "from chunkatlas.logs import one_line_interrupts\n"
    "from chunkatlas.store import verify_store\n"
    "from chunkatlas.study import Network, measure_stores_backends\n"
    "from chunkatlas.workflow import input_store, run_job\n"
)


def import_seconds() -> float:
    """Wall seconds of a fresh interpreter that imports what scripts/remote.py imports, less an
    empty interpreter's."""

    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    return min(run(IMPORTS) for _ in range(3)) - min(run("pass") for _ in range(3))


#: Phases of one job, each the cumulative seconds of a function of the study (its module's
#: file name and the function's name, as the profile records them).
PHASES = {
    "serve: start + load + stop": ("study/_serving.py", "served"),
    "  server processes start + stop": ("study/_server_process.py", "process_serving"),
    "reads, all": ("study/_measure.py", "run_patterns"),
    "markers + log parsing": ("study/_measure.py", "mark"),
    "decode": ("rewrite/_geometry.py", "decode_pass_seconds"),
}


def phase_seconds(profile: cProfile.Profile) -> dict[str, float]:
    """Cumulative seconds of each of :data:`PHASES` in ``profile``.  A context manager's
    seconds are those of its generator: starting and stopping, not the block it wraps."""
    seconds = dict.fromkeys(PHASES, 0.0)
    for (filename, _, function), (_, _, _, cumulative, _) in pstats.Stats(profile).stats.items():
        for phase, (module, name) in PHASES.items():
            if function == name and filename.endswith(module):
                seconds[phase] += cumulative
    return seconds


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
    from chunkatlas.store import RemoteSettings, verify_store
    from chunkatlas.study import Network, measure_backends

    verify = time.perf_counter()
    verify_store(args.store, args.store.with_name("store.manifest.json"))
    verify = time.perf_counter() - verify
    profile = cProfile.Profile()
    table = profile.runcall(
        measure_backends,
        args.store,
        backends=backends,
        network=Network(args.latency_ms, args.bandwidth_mbps),
        settings=RemoteSettings(),
        repeats=args.repeats,
    )
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = phase_seconds(profile)
    measured = float(table["seconds"].sum()) if args.repeats == 1 else float("nan")
    print(f"{'verify':36s} {verify:7.2f} s")
    for phase, (module, _) in PHASES.items():
        print(f"{phase:36s} {seconds[phase]:7.2f} s  ({module})")
    # what the reads took beyond the measured ones: the warm-up and the opens before each
    print(f"{'  measured reads (table)':36s} {measured:7.2f} s")
    uncounted = seconds["reads, all"] - measured - seconds["markers + log parsing"]
    print(f"{'  uncounted reads (warm-up, opens)':36s} {uncounted:7.2f} s")
    print(f"in-process wall                      {wall:7.2f} s")
    print(f"CPU: this process {cpu:.2f} s, servers {children.ru_utime + children.ru_stime:.2f} s")
    print(table[["pattern", "backend", "requests", "bytes", "seconds"]].to_string(index=False))


if __name__ == "__main__":
    main()
