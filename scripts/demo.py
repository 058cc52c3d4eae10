"""Snakemake entry point: build the embedded demo atlas (:func:`chunkatlas.steps.demo`)."""

from chunkatlas.logs import one_line_interrupts

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from chunkatlas import steps
from chunkatlas.ingest.demo import DemoSpec
from chunkatlas.workflow import output_store, run_job

if __name__ == "__main__":
    run_job(
        snakemake,
        lambda: steps.demo(DemoSpec(**snakemake.params.spec), output_store(snakemake).path),
    )
