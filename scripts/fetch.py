"""Snakemake entry point: fetch one tissue from the configured source to zarr."""

from chunkatlas.fetch import fetch_anndata, fetch_tissue
from chunkatlas.logs import run_snakemake_step
from chunkatlas.remote import RemoteSettings


def main(snakemake):
    source = snakemake.params.source
    # tiledb_config and storage_options may hold keys: read from config, never from params.
    secrets = snakemake.config["source"]
    if source["kind"] == "soma":
        return fetch_tissue(
            source["uri"],
            snakemake.params.tissue,
            snakemake.output.store,
            measurement=source["measurement"],
            layer=source["layer"],
            obs_filter=source["obs_filter"],
            chunk_rows=source["fetch_chunk_rows"],
            var_index=source["var_index"],
            tiledb_config=secrets["tiledb_config"],
            zarr_format=snakemake.params.zarr_format,
        )
    remote = snakemake.config["remote"]
    return fetch_anndata(
        source["uri"],
        snakemake.params.tissue,
        snakemake.output.store,
        tissue_column=source["tissue_column"],
        use_raw=source["use_raw"],
        dense=source["dense"],
        scaled_layer=source["scaled_layer"],
        chunk_rows=source["fetch_chunk_rows"],
        settings=RemoteSettings(
            attempts=remote["attempts"],
            timeout_seconds=remote["timeout_seconds"],
            storage_options=secrets["storage_options"],
        ),
        zarr_format=snakemake.params.zarr_format,
    )


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
