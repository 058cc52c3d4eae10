"""The command line's parsing: an option for each config key a command takes, named, typed,
defaulted and explained by the config schema (:func:`add_config_option`), and a parser whose
help shows no RST markup and whose errors are one line (:class:`Parser`); what an argument
says of others (:func:`guess_source_kind`, :func:`configfiles_in`)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence

import yaml

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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def add_cost_options(parser: argparse.ArgumentParser) -> None:
    """``advise``'s options of money and objects: ``--prices FILE`` and ``--max-objects N``."""
    from chunkatlas.model import Prices

    default = Prices()
    parser.add_argument(
        "--prices",
        default=None,
        metavar="FILE",
        help="a price table in USD, YAML or JSON, with any of get_per_1000 (GET/HEAD requests "
        "per 1,000), put_per_1000 (PUTs per 1,000), gb_month (storage per GB-month), "
        "transfer_gb (transfer out per GB), name and dated (default: "
        f"{default.name}, {default.dated}: ${default.get_per_1000:g} per 1,000 GETs, "
        f"${default.put_per_1000:g} per 1,000 PUTs, ${default.gb_month:g} per GB-month, "
        f"${default.transfer_gb:g} per GB out, as read inside the provider's region)",
    )
    parser.add_argument(
        "--max-objects",
        type=positive_int,
        default=None,
        metavar="N",
        help="propose no layout whose whole store (X, obs, var and their zarr.json files) has "
        "more than N objects (default: no cap)",
    )


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


def guess_source_kind(uri: str) -> str:
    """anndata for h5ad, zarr and scanpy: sources; a TileDB-SOMA Experiment otherwise."""
    anndata_like = uri.startswith("scanpy:") or uri.rstrip("/").endswith((".h5ad", ".zarr"))
    return "anndata" if anndata_like else "soma"


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
