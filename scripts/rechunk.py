"""Snakemake entry point: re-write a store in the geometry its wildcards name."""

from chunkatlas.logs import one_line_interrupts, run_snakemake_step

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from chunkatlas.rewrite import rechunk_store


def main(snakemake):
    params, wildcards = snakemake.params, snakemake.wildcards
    with params.reads.value.local_copy() as fetched:
        rechunk_store(
            fetched,
            params.writes.value.path,
            int(wildcards.chunk),
            shard=int(wildcards.shard),
            codec=wildcards.codec,
            orientation=params.orientation,
            zarr_format=params.zarr_format,
        )


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
