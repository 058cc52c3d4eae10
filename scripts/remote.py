"""Snakemake entry point: request accounting of one store over a loopback HTTP server."""

from chunkatlas.consolidate import verify_store
from chunkatlas.logs import run_snakemake_step
from chunkatlas.remote.measure import measure_store
from chunkatlas.remote.reader import RemoteSettings


def main(snakemake):
    verify_store(snakemake.input.store, snakemake.input.manifest)
    table = measure_store(
        snakemake.input.store,
        snakemake.params.rows,
        server=snakemake.config["remote"]["server"],
        settings=RemoteSettings.from_config(snakemake.config),
        repeats=snakemake.params.repeats,
    )
    table.to_csv(snakemake.output.table, sep="\t", index=False)


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
