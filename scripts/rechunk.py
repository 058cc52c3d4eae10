"""Snakemake entry point: re-write a store in the geometry its wildcards name."""

from chunkatlas.logs import run_snakemake_step
from chunkatlas.rewrite._rechunk import rechunk_store

if __name__ == "__main__":
    run_snakemake_step(
        snakemake,
        lambda: rechunk_store(
            snakemake.input.store,
            snakemake.output.store,
            int(snakemake.wildcards.chunk),
            shard=int(snakemake.wildcards.shard),
            codec=snakemake.wildcards.codec,
            dense_axis=snakemake.config["rechunk"]["dense_axis"],
            zarr_format=snakemake.config["zarr_format"],
        ),
    )
