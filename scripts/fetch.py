"""Snakemake entry point: fetch one tissue from the configured source to zarr
(:func:`chunkatlas.steps.fetch`)."""

from chunkatlas.logs import one_line_interrupts

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from contextlib import nullcontext
from dataclasses import replace

from chunkatlas import steps
from chunkatlas.workflow import input_store, output_store, run_job


def main(snakemake):
    params = snakemake.params
    # the demo atlas, a store of the workflow beside its record (the rule's input), if it is
    atlas = input_store(snakemake, "source", ".soma")[0] if snakemake.input.source else None
    with atlas.local_copy() if atlas else nullcontext(None) as copy:
        settings = params.settings.value
        steps.fetch(
            replace(settings, uri=copy) if copy else settings,
            params.tissue,
            output_store(snakemake).path,
            remote=params.remote.value,
            zarr_format=params.zarr_format,
        )


if __name__ == "__main__":
    run_job(snakemake, lambda: main(snakemake))
