"""Snakemake entry point: fetch one tissue from the configured source to zarr."""

from chunkatlas.logs import one_line_interrupts, run_snakemake_step

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from contextlib import nullcontext
from dataclasses import replace

from chunkatlas.ingest import fetch


def main(snakemake):
    params = snakemake.params
    atlas = params.atlas.value  # the demo atlas, a workflow store
    with atlas.local_copy() if atlas else nullcontext(None) as copy:
        settings = params.settings.value
        fetch(
            replace(settings, uri=copy) if copy else settings,
            params.tissue,
            params.writes.value.path,
            remote=params.remote.value,
            zarr_format=params.zarr_format,
        )


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
