rule remote:
    """Serve the store over HTTP and S3 on loopback, with an emulated network, and count requests, bytes and seconds per access pattern."""
    input:
        store=objects_record(f"{GRID}/store.zarr"),
        manifest=f"{GRID}/store.manifest.json",
    output:
        table=f"{GRID}/remote.tsv",
    log:
        out(f"logs/remote/{POINT}.log"),
    benchmark:
        benchmark_file("remote")
    conda:
        "../../envs/chunkatlas.yaml"
    # a whole core: the reader and its servers keep ~0.8 of one busy (benchmarks/job_overhead.py),
    # and a shared core would stretch the measured seconds
    threads: 1
    resources:
        mem_mb=mem_mb(1000, 2),
        runtime=runtime(15 * (1 + config["remote"]["repeats"])),
    params:
        server=config["remote"]["server"],
        repeats=config["remote"]["repeats"],
        backends=config["remote"]["backends"],
        latency_ms=config["remote"]["latency_ms"],
        bandwidth_mbps=config["remote"]["bandwidth_mbps"],
        settings=Untracked(RemoteSettings.from_config(config)),
        # in an object store: backend s3 is measured on the run's bucket itself
        reads=workflow_store(f"{GRID}/store.zarr"),
    script:
        "../../scripts/remote.py"
