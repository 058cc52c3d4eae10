"""Snakemake entry point: request accounting of one store on loopback servers (HTTP, S3)."""

import pandas as pd

from chunkatlas.consolidate import load_manifest, verify_store
from chunkatlas.geometry import decode_pass_seconds
from chunkatlas.logs import run_snakemake_step
from chunkatlas.remote.measure import measure_store
from chunkatlas.remote.reader import RemoteSettings
from chunkatlas.remote.serve import Network


def main(snakemake):
    verify_store(snakemake.input.store, snakemake.input.manifest)
    params = snakemake.params
    network = Network(latency_ms=params.latency_ms, bandwidth_mbps=params.bandwidth_mbps)
    tables = [
        measure_store(
            snakemake.input.store,
            params.rows,
            backend=backend,
            server=params.server,
            network=network,
            settings=RemoteSettings.from_config(snakemake.config),
            repeats=params.repeats,
        )
        for backend in params.backends
    ]
    table = pd.concat(tables, ignore_index=True)
    manifest = load_manifest(snakemake.input.manifest)
    # The store's geometry costs beside its traffic: objects, bytes, one local decode of X.
    table["objects"] = manifest["objects"]
    table["store_bytes"] = manifest["stored_bytes"]
    table["decode_seconds"] = round(decode_pass_seconds(snakemake.input.store), 3)
    table.to_csv(snakemake.output.table, sep="\t", index=False)


if __name__ == "__main__":
    run_snakemake_step(snakemake, lambda: main(snakemake))
