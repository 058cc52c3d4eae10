"""Snakemake entry point: build the embedded demo atlas."""

from chunkatlas.logs import one_line_interrupts, run_snakemake_step

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from chunkatlas.ingest.demo import DemoSpec, write_demo_atlas

if __name__ == "__main__":
    run_snakemake_step(
        snakemake,
        lambda: write_demo_atlas(
            snakemake.params.writes.value.path, DemoSpec(**snakemake.params.spec)
        ),
    )
