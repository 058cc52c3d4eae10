rule remote:
    """Serve a tissue's stores over HTTP and S3 on loopback, each backend's server started once, with an emulated network, and count requests, bytes and seconds per store and access pattern."""
    input:
        stores=lambda wildcards: tissue_files(wildcards.tissue, "store.objects.json"),
        manifests=lambda wildcards: tissue_files(wildcards.tissue, "store.manifest.json"),
    output:
        tables=[f"{RESULTS}/{{tissue}}/{folder}/remote.tsv" for folder in remote_folders()],
    log:
        out("logs/remote/{tissue}.log"),
    benchmark:
        benchmark_file("remote", "{tissue}")
    conda:
        "../../envs/chunkatlas.yaml"
    # a whole core per backend, each measured by its own reader process side by side: a reader
    # and its server keep ~0.8 of a core busy (benchmarks/job_overhead.py), and a shared core
    # would stretch the measured seconds
    threads: len(config["remote"]["backends"])
    resources:
        mem_mb=mem_mb(1000, 2),
        runtime=runtime(3 * len(remote_folders()) * (1 + config["remote"]["repeats"])),
    params:
        server=config["remote"]["server"],
        repeats=config["remote"]["repeats"],
        backends=config["remote"]["backends"],
        latency_ms=config["remote"]["latency_ms"],
        bandwidth_mbps=config["remote"]["bandwidth_mbps"],
        # what decides the measurements, tracked above; the study's settings as one value
        study=Untracked(SETTINGS.remote),
        settings=Untracked(SETTINGS.source_remote),
        # in an object store: backend s3 is measured on the run's bucket itself
        bucket=run_bucket_param(),
    script:
        "../../scripts/remote.py"
