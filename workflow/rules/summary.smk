rule summary:
    """One row per tissue x chunk size: sizes, HVGs, remote costs, each analysis pass's reads, seconds and memory per step."""
    input:
        # manifests, remote tables, objects records and benchmarks: in an object store,
        # Snakemake retrieves each for the summary (the results it copies itself)
        points=[path for point in grid_points() for path in point_files(point)],
    output:
        table=report(
            out("summary.tsv"),
            caption="../report/summary.rst",
            category="Chunk-size study",
            labels={"content": "summary table"},
        ),
        remote=report(
            out("remote.tsv"),
            caption="../report/remote_table.rst",
            category="Chunk-size study",
            labels={"content": "remote measurements"},
        ),
        passes=report(
            out("analysis_passes.tsv"),
            caption="../report/passes_table.rst",
            category="Chunk-size study",
            labels={"content": "analysis passes"},
        ),
        passes_plot=report(
            out("summary/analysis_passes.png"),
            caption="../report/passes.rst",
            category="Chunk-size study",
            labels={"content": "requests, bytes and seconds per analysis pass"},
        ),
        steps=report(
            out("summary/steps.png"),
            caption="../report/steps.rst",
            category="Chunk-size study",
            labels={"content": "seconds and memory per step"},
        ),
        store_size=report(
            out("summary/store_size.png"),
            caption="../report/store_size.rst",
            category="Chunk-size study",
            labels={"content": "store size"},
        ),
        remote_plot=report(
            out("summary/remote.png"),
            caption="../report/remote.rst",
            category="Chunk-size study",
            labels={"content": "remote requests and bytes"},
        ),
        geometry=report(
            directory(out("summary/geometry")),
            patterns=["{backend}-{pattern}.png"],
            caption="../report/geometry.rst",
            category="Store geometry",
            labels={"backend": "{backend}", "access pattern": "{pattern}"},
        ),
        moved=report(
            out("summary/moved.png"),
            caption="../report/moved.rst",
            category="Store geometry",
            labels={"content": "objects and bytes moved through an object store"},
        ),
        cost_fit=report(
            out("summary/cost_fit.png"),
            caption="../report/cost_fit.rst",
            category="Store geometry",
            labels={"content": "cost model: predicted against measured seconds"},
        ),
        recommendation=report(
            out("recommendation.tsv"),
            caption="../report/recommendation.rst",
            category="Store geometry",
            labels={"content": "recommended geometry per backend and access pattern"},
        ),
        cost_model=out("cost_model.json"),
        # the report's first page: the answer, then what the run did (Snakefile: report)
        first_page=out("summary/first_page.rst"),
    log:
        out("logs/summary.log"),
    localrule: True
    conda:
        "../../envs/chunkatlas.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        points=local_points(),
        bucket=run_bucket_param(),  # each result beside its completion record
        run=config["run"],
        backends=config["remote"]["backends"],
        description=Untracked(Path(workflow.basedir, REPORT_DESCRIPTION).read_text()),
    script:
        "../../scripts/summary.py"


# The report's provenance/config.yaml: Python before 3.13 knows no type for .yaml, and Snakemake's
# report then warns (twice) that it assumes text/plain. application/yaml is the registered type
# (RFC 9512); the report offers the file for download, as it does any text.
import mimetypes

mimetypes.add_type("application/yaml", ".yaml")


rule provenance:
    """The run's configuration (secrets masked), its hash and the software versions."""
    output:
        config=report(
            out("provenance/config.yaml"),
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"content": "configuration"},
        ),
        versions=report(
            out("provenance/versions.tsv"),
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"content": "software versions"},
        ),
    log:
        out("logs/provenance.log"),
    localrule: True
    conda:
        "../../envs/chunkatlas.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        # The record (secrets masked) untracked, its hash and version tracked: a config change
        # re-runs this rule (the provenance always describes the results beside it), and the
        # rerun reason names two hashes rather than the whole config twice.
        record=Untracked(SETTINGS.provenance()),
        config_hash=SETTINGS.provenance()["config_hash"],
        version=SETTINGS.provenance()["chunkatlas_version"],
    script:
        "../../scripts/provenance.py"
