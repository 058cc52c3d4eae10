"""Snakemake entry point: fetch one tissue from the configured source to zarr."""

from chunkatlas.logs import one_line_interrupts, run_snakemake_step

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from dataclasses import replace

from chunkatlas.ingest import fetch


def main(snakemake):
    params = snakemake.params
    settings = params.settings.value
    if snakemake.input.source:  # a workflow file (the demo atlas): where Snakemake put it
        settings = replace(settings, uri=snakemake.input.source[0])
    fetch(
        settings,
        params.tissue,
        snakemake.output.store,
        remote=params.remote.value,
        zarr_format=params.zarr_format,
    )


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
