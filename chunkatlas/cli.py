"""``chunkatlas``: every workflow step as a command, so any step runs outside Snakemake."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from chunkatlas import __version__
from chunkatlas.storeio import DEFAULT_ZARR_FORMAT, ZARR_FORMATS


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def cmd_atlas(args: argparse.Namespace) -> None:
    from chunkatlas.atlas import AtlasSpec, write_demo_atlas

    spec = AtlasSpec(n_cells=args.n_cells, n_genes=args.n_genes, seed=args.seed)
    summary = write_demo_atlas(args.out, spec)
    print(f"demo atlas written to {args.out}: {summary}")


def cmd_fetch(args: argparse.Namespace) -> None:
    from chunkatlas.fetch import fetch_tissue

    fetched = fetch_tissue(
        args.source,
        args.tissue,
        args.out,
        measurement=args.measurement,
        layer=args.layer,
        obs_filter=args.obs_filter,
        chunk_rows=args.chunk_rows,
        zarr_format=args.zarr_format,
    )
    print(f"{args.tissue}: {fetched['n_obs']} cells x {fetched['n_vars']} genes -> {args.out}")


def cmd_rechunk(args: argparse.Namespace) -> None:
    from chunkatlas.chunking import rechunk_store

    rechunk_store(
        args.source, args.out, args.chunk, dense_axis=args.dense_axis, zarr_format=args.zarr_format
    )


def cmd_consolidate(args: argparse.Namespace) -> None:
    from chunkatlas.manifest import consolidate_store, manifest_location

    manifest_path = args.manifest or manifest_location(args.store)
    manifest = consolidate_store(args.store, manifest_path)
    print(f"{args.store}: {len(manifest['arrays'])} arrays, {manifest['stored_bytes']:,} bytes")


def cmd_analyze(args: argparse.Namespace) -> None:
    from chunkatlas.analyze import AnalysisParams, analyze_store
    from chunkatlas.manifest import manifest_location, verify_store

    # A store written by `chunkatlas consolidate` is checked against its manifest first.
    if os.path.exists(manifest_location(args.store)):
        verify_store(args.store, manifest_location(args.store))
    params = AnalysisParams(
        flavor=args.flavor, n_top_genes=args.n_top_genes, n_comps=args.n_comps, engine=args.engine
    )
    result = analyze_store(
        args.store,
        args.out,
        rows=args.chunk,
        params=params,
        workers=args.workers,
        memory_mb=args.memory_mb,
        scheduler_address=args.scheduler_address,
        zarr_format=args.zarr_format,
    )
    if args.plot:
        from chunkatlas.plot import plot_pca

        plot_pca(result, args.plot, label_key=args.label_key)


def add_zarr_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--zarr-format",
        type=int,
        choices=ZARR_FORMATS,
        default=DEFAULT_ZARR_FORMAT,
        help="zarr format of the store written (default 3; 2 for older readers)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chunkatlas", description=__doc__)
    parser.add_argument("--version", action="version", version=f"chunkatlas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    atlas = sub.add_parser("atlas", help="write the embedded demo atlas (a SOMA Experiment)")
    atlas.add_argument("out", help="path of the SOMA Experiment to create")
    atlas.add_argument("--n-cells", type=positive_int, default=30_000)
    atlas.add_argument("--n-genes", type=positive_int, default=2_000)
    atlas.add_argument("--seed", type=int, default=0)
    atlas.set_defaults(func=cmd_atlas)

    fetch = sub.add_parser("fetch", help="stream one tissue of a SOMA Experiment to zarr")
    fetch.add_argument("source", help="SOMA Experiment URI (path or s3://)")
    fetch.add_argument("tissue", help="value of tissue_general to fetch")
    fetch.add_argument("out", help="AnnData zarr store to create")
    fetch.add_argument("--measurement", default="RNA")
    fetch.add_argument("--layer", default="raw")
    fetch.add_argument("--obs-filter", default=None, help="template with {tissue}")
    fetch.add_argument("--chunk-rows", type=positive_int, default=10_000)
    add_zarr_format(fetch)
    fetch.set_defaults(func=cmd_fetch)

    rechunk = sub.add_parser("rechunk", help="re-write a store with X and layers chunked")
    rechunk.add_argument("source")
    rechunk.add_argument("out")
    rechunk.add_argument(
        "--chunk",
        type=positive_int,
        required=True,
        help="cells per chunk (genes per chunk with --dense-axis var)",
    )
    rechunk.add_argument("--dense-axis", choices=("obs", "var"), default="obs")
    add_zarr_format(rechunk)
    rechunk.set_defaults(func=cmd_rechunk)

    consolidate = sub.add_parser("consolidate", help="consolidate metadata, write the manifest")
    consolidate.add_argument("store")
    consolidate.add_argument(
        "--manifest",
        default=None,
        help="manifest path (default: NAME.manifest.json beside NAME.zarr, "
        "where `chunkatlas analyze` looks for it)",
    )
    consolidate.set_defaults(func=cmd_consolidate)

    analyze = sub.add_parser("analyze", help="normalize, log1p, HVG and PCA on Dask")
    analyze.add_argument("store", help="AnnData zarr store with raw counts in X")
    analyze.add_argument("out", help="hvg_pca.zarr to create")
    analyze.add_argument("--chunk", type=positive_int, required=True, help="cells per Dask task")
    analyze.add_argument("--workers", type=positive_int, default=1)
    analyze.add_argument("--memory-mb", type=positive_int, default=4096)
    analyze.add_argument(
        "--engine", default="fused", help="fused (default) or scanpy (scanpy's Dask code paths)"
    )
    analyze.add_argument("--flavor", default="seurat", help="seurat, cell_ranger or seurat_v3")
    analyze.add_argument("--n-top-genes", type=positive_int, default=2000)
    analyze.add_argument("--n-comps", type=positive_int, default=50)
    analyze.add_argument("--scheduler-address", default=None)
    analyze.add_argument("--plot", default=None, help="also write the PCA plot to this PNG")
    analyze.add_argument("--label-key", default="cell_type")
    add_zarr_format(analyze)
    analyze.set_defaults(func=cmd_analyze)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from chunkatlas.logs import configure_logging, report_errors

    args = build_parser().parse_args(argv)
    if getattr(args, "obs_filter", "") is None:
        from chunkatlas.fetch import DEFAULT_OBS_FILTER

        args.obs_filter = DEFAULT_OBS_FILTER
    configure_logging(sys.stderr)
    report_errors(lambda: args.func(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
