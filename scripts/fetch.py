"""Snakemake entry point: fetch one tissue from the configured source to zarr."""

from chunkatlas.ingest import fetch
from chunkatlas.logs import run_snakemake_step

if __name__ == "__main__":
    params = snakemake.params
    run_snakemake_step(
        snakemake,
        lambda: fetch(
            params.settings.value,
            params.tissue,
            snakemake.output.store,
            remote=params.remote.value,
            zarr_format=params.zarr_format,
        ),
    )
