# chunkatlas: atlas-scale single-cell data -> chunk-tuned zarr stores -> HVG/PCA on Dask,
# with the chunk-size trade-off measured across tissues x chunk sizes.
from snakemake.utils import min_version

min_version("9.0")


# A --configfile replaces the default instead of being merged into it, so that a Census config
# does not inherit the demo atlas; --config alone applies on top of the default.
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"


include: "workflow/rules/common.smk"


report: report_first_page()


include: "workflow/rules/demo.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/rechunk.smk"
include: "workflow/rules/consolidate.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/remote.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/judge.smk"


# The analyze jobs of a local run share one Dask cluster, stopped when the run ends.
onstart:
    if workflow.local_exec and config["dask"]["shared_cluster"]:
        open_run_clusters()


onsuccess:
    close_run_clusters()


onerror:
    close_run_clusters()


rule all:
    default_target: True
    input:
        grid_outputs(),
        out("summary.tsv"),
        out("provenance/config.yaml"),
        judge_outputs(),
