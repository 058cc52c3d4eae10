"""Snakemake entry point: re-write a store with X and layers chunked by the chunk wildcard."""

from chunkatlas.chunking import rechunk_store
from chunkatlas.logs import run_snakemake_step

if __name__ == "__main__":
    run_snakemake_step(
        snakemake,
        lambda: rechunk_store(
            snakemake.input.store,
            snakemake.output.store,
            snakemake.params.chunk,
            dense_axis=snakemake.params.dense_axis,
            zarr_format=snakemake.params.zarr_format,
        ),
    )
