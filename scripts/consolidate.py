"""Snakemake entry point: consolidate a store's metadata and write its manifest."""

from chunkatlas.logs import one_line_interrupts, run_snakemake_step

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from chunkatlas.rewrite import consolidate_store


def main(snakemake):
    params = snakemake.params
    store = params.store.value
    with store.local_copy() as copy:
        consolidate_store(
            copy,
            snakemake.output.manifest,
            {"config_hash": params.config_hash.value},
            in_bucket=store.in_bucket,
        )


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
