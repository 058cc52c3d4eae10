rule remote:
    """Serve the store over HTTP on loopback and count requests, bytes and seconds per access pattern."""
    input:
        store="results/{tissue}/chunks-{chunk}/store.zarr",
        manifest="results/{tissue}/chunks-{chunk}/store.manifest.json",
    output:
        table="results/{tissue}/chunks-{chunk}/remote.tsv",
    log:
        "results/logs/remote/{tissue}-{chunk}.log",
    benchmark:
        "results/benchmarks/remote/{tissue}-{chunk}.tsv"
    conda:
        "../../envs/chunkatlas.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb(1000, 2),
        runtime=runtime(30),
    params:
        chunk=lambda wildcards: int(wildcards.chunk),
        remote=config["remote"],
    script:
        "../../scripts/remote.py"
