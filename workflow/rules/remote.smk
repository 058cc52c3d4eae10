rule remote:
    """Serve the store over HTTP on loopback and count requests, bytes and seconds per access pattern."""
    input:
        store=f"{GRID}/store.zarr",
        manifest=f"{GRID}/store.manifest.json",
    output:
        table=f"{GRID}/remote.tsv",
    log:
        out("logs/remote/{tissue}-{chunk}.log"),
    benchmark:
        out("benchmarks/remote/{tissue}-{chunk}.tsv")
    conda:
        "../../envs/chunkatlas.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb(1000, 2),
        runtime=runtime(15 * (1 + config["remote"]["repeats"])),
    params:
        rows=lambda wildcards: int(wildcards.chunk),
        server=config["remote"]["server"],
        repeats=config["remote"]["repeats"],
    script:
        "../../scripts/remote.py"
