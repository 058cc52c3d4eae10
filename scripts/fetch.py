"""Snakemake entry point: stream one tissue from the SOMA source to zarr."""

from chunkatlas.fetch import fetch_tissue
from chunkatlas.logs import run_snakemake_step

if __name__ == "__main__":
    source = snakemake.params.source
    run_snakemake_step(
        snakemake,
        lambda: fetch_tissue(
            source["uri"],
            snakemake.params.tissue,
            snakemake.output.store,
            measurement=source["measurement"],
            layer=source["layer"],
            obs_filter=source["obs_filter"],
            chunk_rows=source["fetch_chunk_rows"],
            var_index=source["var_index"],
            tiledb_config=snakemake.config["source"]["tiledb_config"],
            zarr_format=snakemake.params.zarr_format,
        ),
    )
