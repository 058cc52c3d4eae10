"""What the emulated network costs a remote read, against what it must cost at least.

    python -m benchmarks.network [--latency-ms 50] [--bandwidth-mbps 2]

Builds a small demo store, serves it over HTTP (aiohttp, nginx) and S3 (moto) on loopback, and
reads all of X once per setting.  Each line is a ratio measured / lower bound (≥ 1 when the
emulation holds):

* latency: seconds / (requests x latency / the peak of requests in flight), with the reader's
  default concurrency and one request at a time;
* bandwidth: seconds / (bytes / rate / peak in flight).

Run from the repository root as ``python -m benchmarks.network`` (it reuses the tests' reader
set-up).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from chunkatlas.ingest import fetch_tissue
from chunkatlas.ingest.demo import DemoSpec, write_demo_atlas
from chunkatlas.rewrite import consolidate_store, rechunk_store
from chunkatlas.study import Network, peak_in_flight
from tests.servers.test_network import DEFAULT, SEQUENTIAL, timed_read

SETTINGS = (("http", "aiohttp"), ("http", "nginx"), ("s3", "moto"))  # moto: s3_serving


def small_store(where: Path) -> Path:
    write_demo_atlas(str(where / "atlas.soma"), DemoSpec(n_cells=2400, n_genes=400, seed=3))
    fetch_tissue(str(where / "atlas.soma"), "lung", where / "lung.zarr", chunk_rows=300)
    store = where / "served" / "store.zarr"
    rechunk_store(where / "lung.zarr", store, 200)
    consolidate_store(store, store.with_name("store.manifest.json"))
    return store


def fresh(tmp: str) -> Path:
    """A new folder for one read's request log (the markers count from 1 in each)."""
    return Path(tempfile.mkdtemp(dir=tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--bandwidth-mbps", type=float, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = small_store(Path(tmp))
        for backend, server in SETTINGS:
            for mode, name in ((DEFAULT, "default"), (SEQUENTIAL, "sequential")):
                latency = Network(latency_ms=args.latency_ms)
                seconds, entries = timed_read(
                    store, fresh(tmp), backend, latency, mode=mode, server=server
                )
                peak = peak_in_flight(entries)
                bound = len(entries) * args.latency_ms / 1000 / peak
                print(
                    f"{backend:4s} {server:7s} {name:10s} latency: {seconds:.2f} s for "
                    f"{len(entries)} requests, peak {peak} in flight, ratio {seconds / bound:.2f}"
                )
            cap = Network(bandwidth_mbps=args.bandwidth_mbps)
            seconds, entries = timed_read(store, fresh(tmp), backend, cap, server=server)
            size = sum(e["bytes"] for e in entries)
            if not entries:  # seen with nginx's limit_rate: its log had no entries for the read
                print(f"{backend:4s} {server:7s} bandwidth: no requests logged")
                continue
            bound = size / cap.bytes_per_second / peak_in_flight(entries)
            print(
                f"{backend:4s} {server:7s} bandwidth: {seconds:.2f} s for {size:,} bytes, "
                f"ratio {seconds / bound:.2f}"
            )


if __name__ == "__main__":
    main()
