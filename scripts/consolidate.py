"""Snakemake entry point: consolidate a store's metadata and write its manifest."""

from chunkatlas.logs import one_line_interrupts, run_snakemake_step

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from chunkatlas.rewrite import consolidate_store

if __name__ == "__main__":
    params = snakemake.params
    run_snakemake_step(
        snakemake,
        lambda: consolidate_store(
            snakemake.input.store,
            snakemake.output.manifest,
            {"config_hash": params.config_hash.value},
            in_bucket=params.in_bucket.value,
        ),
    )
