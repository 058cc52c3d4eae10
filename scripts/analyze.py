"""Snakemake entry point: HVG and PCA on a Dask cluster (:func:`chunkatlas.steps.analyze`),
reading the store where ``analysis.read`` says: its path, or a loopback HTTP or S3 server behind
the emulated network.  When the run keeps its outputs in an object store, the store is read
where it lies there.

The guard matters: Dask's worker processes re-import the main module.
"""

from chunkatlas.logs import one_line_interrupts

one_line_interrupts()  # first: a Ctrl-C while the imports below load is one line

from dataclasses import fields

from chunkatlas import steps
from chunkatlas.analysis import AnalysisParams
from chunkatlas.workflow import input_store, output_store, run_job


def main(snakemake):
    params = snakemake.params
    reads = input_store(snakemake)
    remote, served = params.remote.value, None
    if reads.bucket is not None:  # its URL: the guarded reader checks it against its manifest
        remote = reads.bucket.reader(remote)
    elif params.backend != "local":
        server = params.server if params.backend == "http" else "moto"
        served = steps.Served(params.backend, server, params.network.value)
    steps.analyze(
        reads.where,
        output_store(snakemake).path,
        params=AnalysisParams(**{f.name: params[f.name] for f in fields(AnalysisParams)}),
        cluster=params.cluster.value,
        zarr_format=params.zarr_format,
        remote=remote,
        manifest=snakemake.input.manifest,
        provenance={"config_hash": params.config_hash.value},
        served=served,
    )


if __name__ == "__main__":
    run_job(snakemake, lambda: main(snakemake))
