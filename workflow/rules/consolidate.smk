rule consolidate:
    """Consolidate the store's metadata and write its manifest (the store's completion record)."""
    input:
        store=objects_record(f"{GRID}/store.zarr"),
    output:
        manifest=f"{GRID}/store.manifest.json",
    log:
        out(f"logs/consolidate/{POINT}.log"),
    benchmark:
        benchmark_file("consolidate")
    localrule: True
    conda:
        "../../envs/chunkatlas.yaml"
    resources:
        mem_mb=500,
        runtime=10,
    params:
        config_hash=config_hash(),
        # in an object store: the consolidated metadata goes back into the bucket's store
        store=workflow_store(f"{GRID}/store.zarr"),
    script:
        "../../scripts/consolidate.py"
