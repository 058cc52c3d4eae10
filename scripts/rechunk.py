"""Snakemake entry point: re-write a store in the geometry its wildcards name
(:func:`chunkatlas.steps.rechunk`)."""

from chunkatlas.logs import one_line_interrupts

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from chunkatlas import steps
from chunkatlas.workflow import input_store, output_store, run_job


def main(snakemake):
    wildcards = snakemake.wildcards
    with input_store(snakemake, "fetched").local_copy() as fetched:
        steps.rechunk(
            fetched,
            output_store(snakemake).path,
            chunk=int(wildcards.chunk),
            orientation=wildcards.orientation,
            shard=int(wildcards.shard),
            codec=wildcards.codec,
            zarr_format=snakemake.params.zarr_format,
        )


if __name__ == "__main__":
    run_job(snakemake, lambda: main(snakemake))
