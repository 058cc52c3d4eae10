rule summary:
    """One row per tissue x chunk size: sizes, HVGs, remote costs, seconds and memory per step."""
    input:
        manifests=expand(f"{GRID}/store.manifest.json", tissue=TISSUES, chunk=CHUNKS),
        results=expand(f"{GRID}/hvg_pca.zarr", tissue=TISSUES, chunk=CHUNKS),
        remote=expand(
            f"{GRID}/remote.tsv",
            tissue=TISSUES,
            chunk=CHUNKS if config["remote"]["enabled"] else [],
        ),
    output:
        table=report(
            "results/summary.tsv",
            caption="../report/summary.rst",
            category="Chunk-size study",
            labels={"content": "summary table"},
        ),
        remote=report(
            "results/remote.tsv",
            caption="../report/remote_table.rst",
            category="Chunk-size study",
            labels={"content": "remote measurements"},
        ),
        steps=report(
            "results/summary/steps.png",
            caption="../report/steps.rst",
            category="Chunk-size study",
            labels={"content": "seconds and memory per step"},
        ),
        store_size=report(
            "results/summary/store_size.png",
            caption="../report/store_size.rst",
            category="Chunk-size study",
            labels={"content": "store size"},
        ),
        remote_plot=report(
            "results/summary/remote.png",
            caption="../report/remote.rst",
            category="Chunk-size study",
            labels={"content": "remote requests and bytes"},
        ),
    log:
        "results/logs/summary.log",
    localrule: True
    conda:
        "../../envs/chunkatlas.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        points=grid_points(),
    script:
        "../../scripts/summary.py"


rule provenance:
    """The run's configuration (secrets masked), its hash and the software versions."""
    output:
        config=report(
            "results/provenance/config.yaml",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"content": "configuration"},
        ),
        versions=report(
            "results/provenance/versions.tsv",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"content": "software versions"},
        ),
    log:
        "results/logs/provenance.log",
    localrule: True
    conda:
        "../../envs/chunkatlas.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../../scripts/provenance.py"
