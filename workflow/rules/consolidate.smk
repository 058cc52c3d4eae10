rule consolidate:
    """Consolidate the store's metadata and write its manifest (the store's completion record)."""
    input:
        store=f"{GRID}/store.zarr",
    output:
        manifest=f"{GRID}/store.manifest.json",
    log:
        out(f"logs/consolidate/{POINT}.log"),
    benchmark:
        out(f"benchmarks/consolidate/{POINT}.tsv")
    localrule: True
    conda:
        "../../envs/chunkatlas.yaml"
    resources:
        mem_mb=500,
        runtime=10,
    params:
        config_hash=config_hash(),
    script:
        "../../scripts/consolidate.py"
