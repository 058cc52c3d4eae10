"""The config schema, read once: the one place each config key's default lives.

It sits at the bottom of the package so that every room (the store included) takes its
defaults from it with :func:`default` or :func:`default_field`, never writing one of its own.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from pathlib import Path

import yaml

# The one description of every config key, its default and what is allowed: read by the
# workflow (validation), by the CLI (its options, their defaults and help) and by the domain
# types (their defaults).
SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


@functools.cache
def _schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def load_schema() -> dict:
    """The schema as a fresh dict (callers may change their copy)."""
    return copy.deepcopy(_schema())


def default(key: str) -> object:
    """The schema's default of the dotted config key ``key`` ("analysis.n_top_genes"), with
    lists as tuples (a frozen dataclass's default must not be mutable); a KeyError names a key
    the schema lacks or gives no default."""
    node = _schema()
    for part in key.split("."):
        node = node["properties"][part]
    if "default" not in node:
        raise KeyError(f"the schema gives {key} no default")
    value = node["default"]
    return tuple(value) if isinstance(value, list) else copy.deepcopy(value)


def default_field(key: str):
    """A dataclass field defaulting to the schema's default of ``key`` (a fresh copy of a
    mapping for each instance)."""
    value = default(key)
    if isinstance(value, dict):
        return dataclasses.field(default_factory=lambda: default(key))
    return dataclasses.field(default=value)
