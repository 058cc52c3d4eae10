"""Snakemake entry point: request accounting of one store on loopback servers (HTTP, S3)."""

from chunkatlas.consolidate import verify_store
from chunkatlas.logs import run_snakemake_step
from chunkatlas.remote.measure import measure_backends
from chunkatlas.remote.reader import RemoteSettings
from chunkatlas.remote.serve import Network


def main(snakemake):
    verify_store(snakemake.input.store, snakemake.input.manifest)
    params = snakemake.params
    table = measure_backends(
        snakemake.input.store,
        params.rows,
        backends=params.backends,
        server=params.server,
        network=Network(latency_ms=params.latency_ms, bandwidth_mbps=params.bandwidth_mbps),
        settings=RemoteSettings.from_config(snakemake.config),
        repeats=params.repeats,
    )
    table.to_csv(snakemake.output.table, sep="\t", index=False)


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
