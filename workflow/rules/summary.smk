rule summary:
    """One row per tissue x chunk size: sizes, HVGs, seconds and peak memory of each step."""
    input:
        manifests=expand("results/{tissue}/chunks-{chunk}/store.manifest.json", tissue=TISSUES, chunk=CHUNKS),
        results=expand("results/{tissue}/chunks-{chunk}/hvg_pca.zarr", tissue=TISSUES, chunk=CHUNKS),
    output:
        table="results/summary.tsv",
    params:
        points=grid_points(),
    log:
        "results/logs/summary.log",
    localrule: True
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/chunkatlas.yaml"
    script:
        "../../scripts/summary.py"
