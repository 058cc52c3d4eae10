rule consolidate:
    """Consolidate the store's metadata and write its manifest (the store's completion record)."""
    input:
        store="results/{tissue}/chunks-{chunk}/store.zarr",
    output:
        manifest="results/{tissue}/chunks-{chunk}/store.manifest.json",
    log:
        "results/logs/consolidate/{tissue}-{chunk}.log",
    benchmark:
        "results/benchmarks/consolidate/{tissue}-{chunk}.tsv"
    localrule: True
    conda:
        "../../envs/chunkatlas.yaml"
    resources:
        mem_mb=500,
        runtime=10,
    script:
        "../../scripts/consolidate.py"
