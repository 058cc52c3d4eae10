rule consolidate:
    """Consolidate the store's metadata and write its manifest (the store's completion record)."""
    input:
        store=f"{GRID}/store.zarr",
    output:
        manifest=f"{GRID}/store.manifest.json",
    log:
        out("logs/consolidate/{tissue}-{chunk}.log"),
    benchmark:
        out("benchmarks/consolidate/{tissue}-{chunk}.tsv")
    localrule: True
    conda:
        "../../envs/chunkatlas.yaml"
    resources:
        mem_mb=500,
        runtime=10,
    script:
        "../../scripts/consolidate.py"
