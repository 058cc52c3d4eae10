"""Snakemake entry point: re-write a store in the geometry its wildcards name."""

from chunkatlas.logs import one_line_interrupts, run_snakemake_step

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from chunkatlas.rewrite import rechunk_store

if __name__ == "__main__":
    run_snakemake_step(
        snakemake,
        lambda: rechunk_store(
            snakemake.input.store,
            snakemake.output.store,
            int(snakemake.wildcards.chunk),
            shard=int(snakemake.wildcards.shard),
            codec=snakemake.wildcards.codec,
            orientation=snakemake.params.orientation,
            zarr_format=snakemake.params.zarr_format,
        ),
    )
