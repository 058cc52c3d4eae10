"""Faster pieces for reading stores, side by side with what chunkatlas uses.

    python benchmarks/readers.py STORE [--repeats 3]

STORE is an AnnData zarr store with CSR X (e.g. benchmarks/data/synthetic-census-70k-20000.zarr,
made by hvg_pca.py).  Each measurement runs in a subprocess of its own, the two variants
alternating, and reports wall seconds:

* **decode**: read every chunk of X's ``data`` and ``indices`` once (one plain pass over X, what
  each pass of the analysis costs at least), with zarr-python's codec pipeline against zarrs
  (Rust) as zarr's codec pipeline (``codec_pipeline.path = zarrs.ZarrsCodecPipeline``).
* **http**: the same pass over HTTP from nginx on loopback, through fsspec (``FsspecStore``,
  what chunkatlas's guarded remote reader wraps) against obstore (``zarr.storage.ObjectStore``
  over ``obstore.store.HTTPStore``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {"decode": ("zarr", "zarrs"), "http": ("fsspec", "obstore")}


def one_pass(group) -> int:
    """Read X's data and indices chunk by chunk; return the stored values read."""
    total = 0
    for name in ("data", "indices"):
        array = group["X"][name]
        step = array.chunks[0]
        for start in range(0, array.shape[0], step):
            total += len(array[start : start + step])
    return total


def child(kind: str, variant: str, where: str) -> None:
    if variant == "zarrs":
        import zarr

        zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"})
    import zarr

    if kind == "decode":
        group = zarr.open_group(where, mode="r")
    elif variant == "fsspec":
        group = zarr.open_group(zarr.storage.FsspecStore.from_url(where, read_only=True), mode="r")
    else:
        from obstore.store import HTTPStore

        store = HTTPStore.from_url(where, client_options={"allow_http": True})  # loopback
        group = zarr.open_group(zarr.storage.ObjectStore(store, read_only=True), mode="r")
    start = time.perf_counter()
    one_pass(group)
    print(round(time.perf_counter() - start, 3))


def measure(kind: str, variant: str, where: str) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, variant, where],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[-1])


def compare(kind: str, where: str, repeats: int) -> None:
    seconds: dict[str, list[float]] = {v: [] for v in VARIANTS[kind]}
    for _ in range(repeats):
        for variant in VARIANTS[kind]:
            seconds[variant].append(measure(kind, variant, where))
    base, other = VARIANTS[kind]
    ratio = statistics.median(seconds[base]) / statistics.median(seconds[other])
    for variant, runs in seconds.items():
        print(f"{kind:7s} {variant:8s} median {statistics.median(runs):6.2f} s  runs {runs}")
    print(f"{kind:7s} {base} / {other}: {ratio:.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("store", nargs="?")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    store = Path(args.store).resolve()
    compare("decode", str(store), args.repeats)
    from chunkatlas.study import nginx_serving

    with (
        tempfile.TemporaryDirectory() as tmp,
        nginx_serving(store.parent, Path(tmp) / "requests.jsonl") as url,
    ):
        compare("http", f"{url}/{store.name}", args.repeats)


if __name__ == "__main__":
    main()
