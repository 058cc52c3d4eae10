"""Snakemake entry point: fetch one tissue from the configured source to zarr."""

from chunkatlas.ingest._fetch import SourceSettings, fetch
from chunkatlas.logs import run_snakemake_step
from chunkatlas.store._guarded import RemoteSettings

if __name__ == "__main__":
    # Settings come from the config (secrets included); the rule's params are its rerun triggers.
    run_snakemake_step(
        snakemake,
        lambda: fetch(
            SourceSettings.from_config(snakemake.config),
            snakemake.params.tissue,
            snakemake.output.store,
            remote=RemoteSettings.from_config(snakemake.config),
            zarr_format=snakemake.config["zarr_format"],
        ),
    )
