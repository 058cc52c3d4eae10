"""What the report needs to know of the workflow's rules: the steps whose jobs Snakemake
benchmarks (their seconds and peak memory, in the summary), and which of them run once per
tissue rather than once per store."""

#: The rules with a benchmark per job, in the order a run goes through them.
STEPS = ("fetch", "rechunk", "consolidate", "analyze", "remote")
#: Steps of one job per tissue (fetch; remote, all the tissue's stores in one job).
PER_TISSUE_STEPS = ("fetch", "remote")
