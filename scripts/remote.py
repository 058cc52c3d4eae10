"""Snakemake entry point: request accounting of one store over a loopback HTTP server."""

from chunkatlas.access import measure_store
from chunkatlas.logs import run_snakemake_step
from chunkatlas.manifest import verify_store
from chunkatlas.remote import RemoteSettings


def main(snakemake):
    verify_store(snakemake.input.store, snakemake.input.manifest)
    remote = snakemake.params.remote
    table = measure_store(
        snakemake.input.store,
        snakemake.params.chunk,
        server=remote["server"],
        settings=RemoteSettings(
            attempts=remote["attempts"], timeout_seconds=remote["timeout_seconds"]
        ),
    )
    table.to_csv(snakemake.output.table, sep="\t", index=False)


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
