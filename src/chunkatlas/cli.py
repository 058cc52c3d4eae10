"""``chunkatlas``: every workflow step as a command, so any step runs outside Snakemake.

Every option is a key of the workflow's config: its name, default, allowed values and help come
from the config schema, and ``--configfile`` reads a workflow config (options override it), so a
step run by hand does what the workflow does with the same config.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from chunkatlas._version import __version__
from chunkatlas.errors import ChunkatlasError
from chunkatlas.rewrite import CODECS, DEFAULT_CODEC, ORIENTATIONS

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
CONFIG_DEST = "config:"  # argparse destinations of config options start with this


def flag(key: str) -> str:
    return "--" + key.rsplit(".", 1)[-1].replace("_", "-")


def schema_of(schema: Mapping, key: str) -> Mapping:
    for part in key.split("."):
        schema = schema["properties"][part]
    return schema


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as YAML (``anon=true``, ``cores=2``, ``x=[a, b]``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, yaml.safe_load(value) if value else ""


def add_config_option(parser: argparse.ArgumentParser, key: str, schema: Mapping) -> None:
    """An option for config ``key``; unset options leave the config (file or default) alone."""
    sub = schema_of(schema, key)
    kinds = sub.get("type", "string")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    default = sub.get("default")
    shown = "" if default in (None, {}, []) else f" (default: {default})"
    help_text = f"{sub['description']}{shown}; config {key}".replace("%", "%%")
    options: dict = {"dest": CONFIG_DEST + key, "default": argparse.SUPPRESS, "help": help_text}
    if "enum" in sub:
        values = sub["enum"]
        options.update(choices=values, type=type(values[0]))
    elif "boolean" in kinds:
        options["action"] = argparse.BooleanOptionalAction
    elif "object" in kinds:
        options.update(type=key_value, action="append", metavar="KEY=VALUE")
        options["help"] = help_text + " (repeat for more keys)"
    elif "integer" in kinds:
        options.update(type=int, metavar="N")
    elif "number" in kinds:
        options.update(type=float, metavar="X")
    else:
        options["metavar"] = "TEXT"
    parser.add_argument(flag(key), **options)


def set_key(config: dict, key: str, value: object) -> None:
    *parents, last = key.split(".")
    for part in parents:
        config = config.setdefault(part, {})
    if isinstance(value, list) and value and isinstance(value[0], tuple):  # KEY=VALUE pairs
        value = {**config.get(last, {}), **dict(value)}
    config[last] = value


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
    try:
        return validate_config(config, schema, sections=sections)
    except ChunkatlasError as err:  # name the option, not the config key, where there is one
        message = str(err)
        for key in COMMAND_KEYS.get(args.command, ()):
            message = message.replace(f"config {key}:", f"{flag(key)}:")
        raise ChunkatlasError(message) from None


def cmd_demo(args: argparse.Namespace) -> None:
    from chunkatlas.ingest.demo import DemoSpec, write_demo_atlas

    config = command_config(args, ["demo_atlas"])
    summary = write_demo_atlas(args.out, DemoSpec(**config["demo_atlas"]))
    print(f"demo atlas written to {args.out}: {summary}")


def guess_source_kind(uri: str) -> str:
    """anndata for h5ad, zarr and scanpy: sources; a TileDB-SOMA Experiment otherwise."""
    anndata_like = uri.startswith("scanpy:") or uri.rstrip("/").endswith((".h5ad", ".zarr"))
    return "anndata" if anndata_like else "soma"


def cmd_fetch(args: argparse.Namespace) -> None:
    from chunkatlas.ingest import SourceSettings, fetch
    from chunkatlas.store import RemoteSettings

    setattr(args, CONFIG_DEST + "source.uri", args.source)
    if not hasattr(args, CONFIG_DEST + "source.kind") and not args.configfile:
        setattr(args, CONFIG_DEST + "source.kind", guess_source_kind(args.source))
    config = command_config(args, ["source", "remote", "zarr_format"])
    fetched = fetch(
        SourceSettings.from_config(config),
        args.tissue,
        args.out,
        remote=RemoteSettings.from_config(config),
        zarr_format=config["zarr_format"],
    )
    print(f"{args.tissue}: {fetched['n_obs']} cells x {fetched['n_vars']} genes -> {args.out}")


def cmd_rechunk(args: argparse.Namespace) -> None:
    from chunkatlas.rewrite import rechunk_store

    config = command_config(args, ["zarr_format"])
    rechunk_store(
        args.source,
        args.out,
        args.chunk,
        shard=args.shard,
        codec=args.codec,
        orientation=args.orientation,
        zarr_format=config["zarr_format"],
    )


def cmd_consolidate(args: argparse.Namespace) -> None:
    from chunkatlas.rewrite import consolidate_store
    from chunkatlas.store import manifest_location

    manifest_path = args.manifest or manifest_location(args.store)
    manifest = consolidate_store(args.store, manifest_path)
    print(f"{args.store}: {len(manifest['arrays'])} arrays, {manifest['stored_bytes']:,} bytes")


def cmd_analyze(args: argparse.Namespace) -> None:
    import os

    from chunkatlas.analysis import AnalysisParams, ClusterSettings, analyze_store
    from chunkatlas.store import (
        RemoteSettings,
        StoreLocation,
        check_obs_column,
        manifest_location,
        open_anndata_group,
        refuse_existing,
        task_rows,
        verify_store,
    )

    config = command_config(args, ["analysis", "remote", "dask", "zarr_format"])
    store = StoreLocation.of(args.store, RemoteSettings.from_config(config, "analysis"))
    # A local store written by `chunkatlas consolidate` is checked against its manifest first
    # (a remote one chunk by chunk as it is read).
    if not store.is_remote and os.path.exists(manifest_location(args.store)):
        verify_store(args.store, manifest_location(args.store))
    refuse_existing(args.out)  # every check before the work
    store = store.probed()  # a remote store: opened once, with its manifest or without one
    if args.plot:
        refuse_existing(args.plot)
        check_obs_column(store, config["analysis"]["label_key"], "--label-key")
    rows, warning = task_rows(open_anndata_group(store)["X"], args.chunk)
    if warning:
        print(f"chunkatlas: warning: --chunk {warning}", file=sys.stderr, flush=True)
    memory_mb = args.workers * config["dask"]["memory_mb_per_worker"]
    result = analyze_store(
        store,
        args.out,
        rows=rows,
        params=AnalysisParams.from_config(config),
        cluster=ClusterSettings.from_config(config, workers=args.workers, memory_mb=memory_mb),
        zarr_format=config["zarr_format"],
    )
    if args.plot:
        from chunkatlas.report import plot_pca

        plot_pca(result, args.plot, label_key=config["analysis"]["label_key"])


def configfiles_in(snakemake_args: Sequence[str]) -> list[str]:
    """The paths given to snakemake's ``--configfile``/``--configfiles`` (one or more each)."""
    files, taking = [], False
    for arg in snakemake_args:
        name, sep, value = arg.partition("=")
        if name in ("--configfile", "--configfiles"):
            taking = not sep
            files += [value] if sep else []
        elif taking and not arg.startswith("-"):
            files.append(arg)
        else:
            taking = False
    return files


def run_workflow(snakemake_args: Sequence[str]) -> int:
    """``snakemake ARGS`` on chunkatlas's workflow, from any directory (results go there).

    Snakemake reads ``--configfile`` before any workflow code runs and answers a missing file
    with a traceback; here each one is checked first, with one line.
    """
    import subprocess
    from pathlib import Path

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


#: Where a run started in a directory writes its cost model (``results/RUN/``).
RUN_MODELS = "results/*/cost_model.json"
#: What the shipped reference model was fitted on (its file's "origin" says the same).
REFERENCE_ORIGIN = "config/geometry.yaml's study run of the demo atlas's lung"


def default_run() -> str | None:
    """The ``run`` of the workflow's default config (config/config.yaml beside the Snakefile,
    the one ``snakemake``/``chunkatlas run`` use without ``--configfile``), if it is there."""
    path = Path(__file__).resolve().parents[2] / "config" / "config.yaml"
    try:
        run = yaml.safe_load(path.read_text()).get("run")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return run if isinstance(run, str) else None


def choose_cost_model(path: str | None, backend: str, directory: Path):
    """The cost model ``advise`` uses, and one line saying which and why.

    ``--model`` if given; otherwise a study run's ``results/RUN/cost_model.json`` in
    ``directory`` (the default config's run first, then the most recently written) that has a fit
    for ``backend``; otherwise the reference model shipped with chunkatlas.
    """
    from chunkatlas import report

    if path is not None:
        return report.load_cost_model(path), f"cost model: {path} (--model)"
    run = default_run()
    found = sorted(
        directory.glob(RUN_MODELS),
        key=lambda p: (p.parent.name != run, -p.stat().st_mtime, p.parent.name),
    )
    passed = []
    for candidate in found:
        where = candidate.relative_to(directory).as_posix()
        try:
            model = report.load_cost_model(candidate)
        except ChunkatlasError:
            passed.append(f"{where} holds no usable model")
            continue
        if backend not in model.fit.backends:
            passed.append(f"{where} has no {backend} fit")
            continue
        why = "the default config's run" if candidate.parent.name == run else "the newest run here"
        others = [p.relative_to(directory).as_posix() for p in found if p != candidate]
        also = f"; also here: {', '.join(others)}" if others else ""
        return model, (
            f"cost model: {where}, of the run {candidate.parent.name!r} in this directory "
            f"({why}{also}; --model FILE to choose)"
        )
    why = "; ".join(passed) or f"no {RUN_MODELS} in this directory"
    return report.load_cost_model(), (
        f"cost model: the reference model shipped with chunkatlas ({why}; --model FILE for a run's)"
    )


def cmd_advise(args: argparse.Namespace) -> None:
    from chunkatlas import report

    if args.source is None and args.cells is None:
        raise ChunkatlasError(
            "advise needs a SOURCE (a store, an h5ad, a SOMA Experiment) or --cells N"
        )
    if args.source is not None:
        for name in ("genes", "values_per_cell"):
            if getattr(args, name) is not None:
                raise ChunkatlasError(
                    f"--{name.replace('_', '-')} {getattr(args, name)}: the size of an atlas "
                    f"without a SOURCE; {args.source} gives its own (--cells to scale it)"
                )
    model, which = choose_cost_model(args.model, args.backend, Path.cwd())
    if args.source is None:
        genes = args.genes or DEFAULT_GENES
        per_cell = args.values_per_cell or DEFAULT_VALUES_PER_CELL
        if per_cell > genes:
            raise ChunkatlasError(
                f"--values-per-cell {per_cell:,} is more than the atlas's genes ({genes:,}): "
                "a cell stores at most one value per gene"
            )
        atlas = report.Atlas(args.cells, genes, args.cells * per_cell)
        source = "ATLAS.zarr"
        first = None
    else:
        atlas = report.atlas_of(args.source, args.tissue)
        atlas = atlas.with_cells(args.cells) if args.cells else atlas
        source, first = args.source, None
        if not source.rstrip("/").endswith(".zarr"):  # rechunk reads AnnData zarr stores
            name = args.tissue or Path(source.rstrip("/")).stem
            source = f"{name.replace(' ', '_')}.zarr"
            tissue = args.tissue or "all"
            first = f"(first: chunkatlas fetch {args.source} {tissue} {source})"
    patterns = args.pattern or list(report.X_PATTERNS)
    advice = report.advice_text(atlas, model, args.backend, patterns, source)
    print("\n".join(line for line in (which, first, advice) if line))


DEFAULT_GENES = 20_000
DEFAULT_VALUES_PER_CELL = 1_500


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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


RST_MARKUP = re.compile(r"(?::[\w:-]+:)?`{1,2}~?([^`]+?)`{1,2}")


def plain_text(text: str) -> str:
    """RST inline markup as a terminal shows it: the text inside double or single backquotes,
    with or without a role (:mod: and the like), without them."""
    return RST_MARKUP.sub(r"\1", text)


class PlainHelpFormatter(argparse.HelpFormatter):
    """Help without RST markup: descriptions and option help come from docstrings and the
    config schema, written for Sphinx."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain_text(text))

    def _expand_help(self, action: argparse.Action) -> str:
        return plain_text(super()._expand_help(action))


class Parser(argparse.ArgumentParser):
    """chunkatlas's parser: plain help, and a bad argument is one line, as every other error."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", PlainHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        print(f"chunkatlas: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from chunkatlas.config import load_schema

    schema = load_schema()
    parser = Parser(prog="chunkatlas", description=__doc__)
    parser.add_argument("--version", action="version", version=f"chunkatlas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {
        "demo": (cmd_demo, "write the embedded demo atlas (a TileDB-SOMA Experiment)"),
        "fetch": (cmd_fetch, "stream one tissue of a source (SOMA or AnnData) to a zarr store"),
        "rechunk": (cmd_rechunk, "re-write a store with X and layers chunked"),
        "consolidate": (cmd_consolidate, "consolidate metadata, write the manifest"),
        "analyze": (cmd_analyze, "normalize, log1p, HVG and PCA on Dask"),
        "advise": (cmd_advise, "which layout to write an atlas in, for how it is read"),
    }
    sub.add_parser(
        "run",
        help="run the whole workflow: snakemake with chunkatlas's Snakefile (chunkatlas run "
        "--cores 2 [--configfile FILE] [any snakemake option]), config files checked first",
        add_help=False,
    )
    parsers = {}
    for name, (func, help_text) in commands.items():
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
        "--chunk",
        type=positive_int,
        default=None,
        help="cells per Dask task (default: from the store, one stored object of X per task)",
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
