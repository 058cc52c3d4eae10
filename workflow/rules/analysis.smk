rule warmup:
    """Analyse tiny stores once so that numba's one-off compilation is not timed in analyze."""
    output:
        seconds=out("warmup.yaml"),
    log:
        out("logs/warmup.log"),
    conda:
        "../../envs/chunkatlas.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        # what decides which kernels compile (the tiny stores have their own sizes)
        engine=config["analysis"]["engine"],
        flavor=config["analysis"]["flavor"],
        zarr_format=config["zarr_format"],
        analysis=Untracked(SETTINGS.analysis),
    script:
        "../../scripts/warmup.py"


rule analyze:
    """normalize_total, log1p, highly-variable genes and PCA on a Dask cluster, one stored object of X per task, reading the store from its path or over HTTP/S3 (analysis.read)."""
    input:
        store=record_of(f"{GRID}/store.zarr"),
        manifest=f"{GRID}/store.manifest.json",
        warmup=rules.warmup.output.seconds,
    output:
        objects=record_of(f"{GRID}/hvg_pca.zarr"),
    log:
        out(f"logs/analyze/{POINT}.log"),
    benchmark:
        benchmark_file("analyze")
    conda:
        "../../envs/chunkatlas.yaml"
    threads: 2
    resources:
        mem_mb=lambda wildcards, threads, attempt: threads
        * config["dask"]["memory_mb_per_worker"]
        * attempt,
        runtime=runtime(60),
    params:
        # each analysis setting (flavor, n_top_genes, ...) a param of its own: a change re-runs
        # the rule, and its rerun reason names that setting's old and new value only
        **asdict(SETTINGS.analysis),
        # in an object store: read where it lies (its URL), never downloaded
        bucket=run_bucket_param(),  # the stores beside their records: in the bucket, if any
        zarr_format=config["zarr_format"],
        # where the store is read, and over what network: the per-pass costs depend on them
        read=analysis_read(),
        backend=config["analysis"]["read"],
        server=config["remote"]["server"],
        network=Untracked(SETTINGS.network),
        remote=Untracked(SETTINGS.analysis_remote),
        cluster=cluster_settings,
        config_hash=config_hash(),
    script:
        "../../scripts/analyze.py"


rule plot_pca:
    """PC1 against PC2, the ten commonest cell types in colour."""
    input:
        result=record_of(f"{GRID}/hvg_pca.zarr"),
        manifest=f"{GRID}/store.manifest.json",  # says whether X is sparse (chunked by cells)
    output:
        plot=report(
            f"{GRID}/pca.png",
            caption="../report/pca.rst",
            category="PCA",
            subcategory="{tissue}",
            labels={
                "tissue": "{tissue}",
                "orientation": "{orientation}",
                "chunk size": "{chunk}",
                "chunks per shard": "{shard}",
                "codec": "{codec}",
            },
        ),
    log:
        out(f"logs/plot_pca/{POINT}.log"),
    localrule: True
    conda:
        "../../envs/chunkatlas.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        bucket=run_bucket_param(),
        label_key=config["analysis"]["label_key"],
        tissue=lambda wildcards: TISSUES[wildcards.tissue],
        orientation=lambda wildcards: wildcards.orientation,
    script:
        "../../scripts/plot_pca.py"
