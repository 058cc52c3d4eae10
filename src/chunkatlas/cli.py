"""``chunkatlas``: every workflow step as a command, so any step runs outside Snakemake.

Every option is a key of the workflow's config: its name, default, allowed values and help come
from the config schema, and ``--configfile`` reads a workflow config (options override it), so a
step run by hand does what the workflow does with the same config.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from chunkatlas._parser import (
    CONFIG_DEST,
    Parser,
    add_config_option,
    add_cost_options,
    configfiles_in,
    flag,
    guess_source_kind,
    plain_text,  # noqa: F401 - the help text as a terminal shows it, for callers of the CLI
    positive_int,
    set_key,
)
from chunkatlas._version import __version__
from chunkatlas.errors import ChunkatlasError
from chunkatlas.model import DEFAULT_READER, READERS, REFERENCE_ORIGIN, RUN_MODELS
from chunkatlas.rewrite import CODECS, DEFAULT_CODEC, ORIENTATIONS
from chunkatlas.steps import DEFAULT_GENES, DEFAULT_VALUES_PER_CELL

# The config keys each command takes as options (the flag is the last part, dashed).
COMMAND_KEYS = {
    "demo": ("demo_atlas.n_cells", "demo_atlas.n_genes", "demo_atlas.seed"),
    "fetch": (
        "source.kind",
        "source.fetch_chunk_rows",
        "source.measurement",
        "source.layer",
        "source.obs_filter",
        "source.var_index",
        "source.tiledb_config",
        "source.tissue_column",
        "source.use_raw",
        "source.dense",
        "source.scaled_layer",
        "source.storage_options",
        "remote.attempts",
        "remote.timeout_seconds",
        "zarr_format",
    ),
    "rechunk": ("zarr_format",),
    "analyze": (
        "analysis.engine",
        "analysis.flavor",
        "analysis.batch_key",
        "analysis.n_top_genes",
        "analysis.n_comps",
        "analysis.normalized",
        "analysis.label_key",
        "analysis.storage_options",
        "remote.attempts",
        "remote.timeout_seconds",
        "dask.memory_mb_per_worker",
        "dask.threads_per_worker",
        "dask.shared_cluster",
        "dask.cluster",
        "dask.scheduler_address",
        "dask.connect_timeout",
        "dask.large_graph_warning_threshold",
        "dask.slurm",
        "zarr_format",
    ),
}


def named_by_options[T](args: argparse.Namespace, build: Callable[[], T]) -> T:
    """``build()``, its one-line error naming the command's option rather than the config key
    (``--n-top-genes: 0 is ...`` for ``config analysis.n_top_genes: 0 is ...``)."""
    try:
        return build()
    except ChunkatlasError as err:
        message = str(err)
        for key in COMMAND_KEYS.get(args.command, ()):
            message = message.replace(f"config {key}:", f"{flag(key)}:")
            if message.startswith(f"{key} "):  # a step's message about the key
                message = flag(key) + message.removeprefix(key)
        raise ChunkatlasError(message) from None


def command_config(args: argparse.Namespace, sections: Sequence[str]) -> dict:
    """The validated config of one command: ``--configfile``, then the options given."""
    from chunkatlas.config import load_schema, read_configfile, validate_config

    schema = load_schema()
    config = read_configfile(args.configfile) if args.configfile else {}
    config = {k: v for k, v in config.items() if k in sections}
    for section in sections:  # a section left out (demo_atlas has no default) is all defaults
        if schema["properties"][section].get("type") == "object":
            config.setdefault(section, {})
    for dest, value in vars(args).items():
        if dest.startswith(CONFIG_DEST):
            set_key(config, dest.removeprefix(CONFIG_DEST), value)
    return named_by_options(args, lambda: validate_config(config, schema, sections=sections))


def cmd_demo(args: argparse.Namespace) -> None:
    from chunkatlas import settings, steps

    spec = settings.demo_spec(command_config(args, ["demo_atlas"]))
    summary = steps.demo(spec, args.out)
    print(f"demo atlas written to {args.out}: {summary}")


def cmd_fetch(args: argparse.Namespace) -> None:
    from chunkatlas import settings, steps

    setattr(args, CONFIG_DEST + "source.uri", args.source)
    if not hasattr(args, CONFIG_DEST + "source.kind") and not args.configfile:
        setattr(args, CONFIG_DEST + "source.kind", guess_source_kind(args.source))
    config = command_config(args, ["source", "remote", "zarr_format"])
    fetched = steps.fetch(
        named_by_options(args, lambda: settings.source_settings(config)),
        args.tissue,
        args.out,
        remote=settings.remote_settings(config, "source"),
        zarr_format=config["zarr_format"],
    )
    print(f"{args.tissue}: {fetched['n_obs']} cells x {fetched['n_vars']} genes -> {args.out}")


def cmd_rechunk(args: argparse.Namespace) -> None:
    from chunkatlas import steps

    config = command_config(args, ["zarr_format"])
    steps.rechunk(
        args.source,
        args.out,
        chunk=args.chunk,
        orientation=args.orientation,
        shard=args.shard,
        codec=args.codec,
        zarr_format=config["zarr_format"],
    )


def cmd_consolidate(args: argparse.Namespace) -> None:
    from chunkatlas import steps

    manifest = steps.consolidate(args.store, args.manifest)
    print(f"{args.store}: {len(manifest['arrays'])} arrays, {manifest['stored_bytes']:,} bytes")


def task_cells_of(args: argparse.Namespace) -> int | None:
    """``--task-cells``, or ``--chunk``, its old name; refused when both disagree."""
    if None not in (args.task_cells, args.chunk) and args.task_cells != args.chunk:
        raise ChunkatlasError(
            f"--task-cells {args.task_cells} and --chunk {args.chunk} disagree: --chunk is "
            "the old name of --task-cells (cells per Dask task); give --task-cells only"
        )
    return args.task_cells if args.task_cells is not None else args.chunk


def cmd_analyze(args: argparse.Namespace) -> None:
    from chunkatlas import settings, steps

    task_cells = task_cells_of(args)
    option = "--chunk" if args.task_cells is None else "--task-cells"
    config = command_config(args, ["analysis", "remote", "dask", "zarr_format"])
    params = named_by_options(args, lambda: settings.analysis_params(config))
    named_by_options(
        args,
        lambda: steps.analyze(
            args.store,
            args.out,
            params=params,
            cluster=settings.dask_settings(config).cluster(args.workers),
            zarr_format=config["zarr_format"],
            remote=settings.remote_settings(config, "analysis"),
            task_cells=task_cells,
            figure=args.plot,
            label_key=config["analysis"]["label_key"],
            warn=lambda text: print(f"chunkatlas: warning: {option} {text}", file=sys.stderr),
        ),
    )


def run_workflow(snakemake_args: Sequence[str]) -> int:
    """``snakemake ARGS`` on chunkatlas's workflow, from any directory (results go there).

    Snakemake reads ``--configfile`` before any workflow code runs and answers a missing file
    with a traceback; here each one is checked first, with one line.
    """
    import subprocess

    from chunkatlas.config import read_configfile

    for path in configfiles_in(snakemake_args):
        read_configfile(path)
    snakefile = Path(__file__).resolve().parents[2] / "Snakefile"  # src/chunkatlas/cli.py
    if not snakefile.exists():
        raise ChunkatlasError(
            f"no workflow beside this chunkatlas ({snakefile} is missing): install it from a "
            "checkout (pip install -e .)"
        )
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile)]
    return subprocess.call([*command, *snakemake_args])


def default_run() -> str | None:
    """The ``run`` of the workflow's default config (config/config.yaml beside the Snakefile,
    the one ``snakemake``/``chunkatlas run`` use without ``--configfile``), if it is there."""
    path = Path(__file__).resolve().parents[2] / "config" / "config.yaml"
    try:
        run = yaml.safe_load(path.read_text()).get("run")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return run if isinstance(run, str) else None


def cmd_advise(args: argparse.Namespace) -> None:
    from chunkatlas import steps

    print(
        steps.advise(
            args.source,
            backend=args.backend,
            tissue=args.tissue,
            cells=args.cells,
            genes=args.genes,
            values_per_cell=args.values_per_cell,
            patterns=args.pattern,
            model=args.model,
            directory=Path.cwd(),
            run=default_run(),
            prices=args.prices,
            max_objects=args.max_objects,
            reader=args.reader,
        )
    )


def add_advise_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        nargs="?",
        default=None,
        help="the atlas: an AnnData .zarr store or .h5ad file, or a TileDB-SOMA Experiment "
        "(with --tissue); or leave it out and give --cells",
    )
    parser.add_argument("--tissue", default=None, help="one tissue of a SOMA source")
    parser.add_argument(
        "--cells",
        type=positive_int,
        default=None,
        help="cells to advise for (default: the source's)",
    )
    parser.add_argument(
        "--genes",
        type=positive_int,
        default=None,
        help=f"genes, without a source (default {DEFAULT_GENES:,})",
    )
    parser.add_argument(
        "--values-per-cell",
        type=positive_int,
        default=None,
        help=f"stored values per cell, without a source (default {DEFAULT_VALUES_PER_CELL:,}, "
        "about the Census's)",
    )
    parser.add_argument(
        "--backend", choices=["http", "s3"], default="s3", help="where it is read (default: s3)"
    )
    parser.add_argument(
        "--pattern",
        action="append",
        choices=["one_gene", "fifty_genes", "cell_block", "all_x"],
        help="an access pattern its users read (repeat it; default: all four)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help=f"cost_model.json of a study run (default: a run's {RUN_MODELS} in this "
        f"directory, the default config's run first, else the reference model shipped with "
        f"chunkatlas, fitted on {REFERENCE_ORIGIN})",
    )
    parser.add_argument(
        "--reader",
        choices=list(READERS),
        default=DEFAULT_READER,
        help="who reads the atlas: anndata (plain anndata/zarr, as a user reads: its arrays one "
        "after another, each object in one GET) or chunkatlas (its analysis: ranges of large "
        f"objects in parallel); default: {DEFAULT_READER}",
    )
    add_cost_options(parser)


COMMANDS = {
    "demo": (cmd_demo, "write the embedded demo atlas (a TileDB-SOMA Experiment)"),
    "fetch": (cmd_fetch, "stream one tissue of a source (SOMA or AnnData) to a zarr store"),
    "rechunk": (cmd_rechunk, "re-write a store with X and layers chunked"),
    "consolidate": (cmd_consolidate, "consolidate metadata, write the manifest"),
    "analyze": (cmd_analyze, "normalize, log1p, HVG and PCA on Dask"),
    "advise": (cmd_advise, "which layout to write an atlas in, for how it is read"),
}


def build_parser() -> argparse.ArgumentParser:
    from chunkatlas.config import load_schema

    schema = load_schema()
    parser = Parser(prog="chunkatlas", description=__doc__)
    parser.add_argument("--version", action="version", version=f"chunkatlas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "run",
        help="run the whole workflow: snakemake with chunkatlas's Snakefile (chunkatlas run "
        "--cores 2 [--configfile FILE] [any snakemake option]), config files checked first",
        add_help=False,
    )
    parsers = {}
    for name, (func, help_text) in COMMANDS.items():
        parsers[name] = sub.add_parser(name, help=help_text, description=help_text)
        parsers[name].set_defaults(func=func)

    parsers["demo"].add_argument("out", help="path of the SOMA Experiment to create")

    fetch = parsers["fetch"]
    fetch.add_argument(
        "source",
        help="SOMA Experiment, .h5ad or .zarr store (path, http(s):// or s3://) or scanpy:NAME; "
        "--kind defaults to anndata for .h5ad, .zarr and scanpy:, soma otherwise",
    )
    fetch.add_argument("tissue", help="the tissue to fetch (with --tissue-column or obs_filter)")
    fetch.add_argument("out", help="AnnData zarr store to create")

    rechunk = parsers["rechunk"]
    rechunk.add_argument("source", help="AnnData zarr store")
    rechunk.add_argument("out", help="AnnData zarr store to create")
    rechunk.add_argument(
        "--chunk",
        type=positive_int,
        required=True,
        help="cells per chunk (genes per chunk with --orientation genes)",
    )
    rechunk.add_argument(
        "--orientation",
        choices=list(ORIENTATIONS),
        default="cells",
        help="cells: cell-major (CSR, or dense chunks of whole cells; the default); genes: "
        "gene-major (CSC, or dense chunks of whole genes: one gene is one small read)",
    )
    rechunk.add_argument(
        "--shard",
        type=positive_int,
        default=1,
        help="chunks per shard of X and layers (zarr v3 sharding; default 1: unsharded)",
    )
    rechunk.add_argument(
        "--codec",
        choices=list(CODECS),
        default=DEFAULT_CODEC,
        help=f"codec preset of X and layers (default: {DEFAULT_CODEC}); see README",
    )

    consolidate = parsers["consolidate"]
    consolidate.add_argument("store", help="AnnData zarr store")
    consolidate.add_argument(
        "--manifest",
        default=None,
        help="manifest path (default: NAME.manifest.json beside NAME.zarr, "
        "where `chunkatlas analyze` looks for it)",
    )

    analyze = parsers["analyze"]
    analyze.add_argument(
        "store", help="AnnData zarr store with raw counts in X: a path or an http(s)/s3 URL"
    )
    analyze.add_argument("out", help="hvg_pca.zarr to create")
    analyze.add_argument(
        "--task-cells",
        type=positive_int,
        default=None,
        metavar="N",
        help="cells per Dask task (default: from the store, one stored object of X per task)",
    )
    analyze.add_argument(
        "--chunk", type=positive_int, default=None, metavar="N", help="old name of --task-cells"
    )
    analyze.add_argument(
        "--workers", type=positive_int, default=1, help="Dask workers, one thread each (default: 1)"
    )
    analyze.add_argument("--plot", default=None, help="also write the PCA plot to this PNG")

    add_advise_arguments(parsers["advise"])
    for name, keys in COMMAND_KEYS.items():
        parsers[name].add_argument(
            "--configfile",
            default=None,
            help="a workflow config (YAML) to take this step's settings from; "
            "options given here override it",
        )
        for key in keys:
            add_config_option(parsers[name], key, schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from chunkatlas.logs import configure_logging, one_line_interrupts, report_errors

    one_line_interrupts()
    argv = sys.argv[1:] if argv is None else list(argv)
    configure_logging(sys.stderr)
    if argv[:1] == ["run"]:  # every other argument is snakemake's
        return report_errors(lambda: run_workflow(argv[1:]))
    args = build_parser().parse_args(argv)
    report_errors(lambda: args.func(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
