"""The configuration: the schema (every key, its default and what is allowed), reading a config
file, coercing values typed as text, and validating with every problem in one line.

The typed settings built from a validated config are :mod:`chunkatlas.settings`'s."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from pathlib import Path

import jsonschema
import yaml

from chunkatlas._schema import SCHEMA_PATH
from chunkatlas._schema import load_schema as _package_schema
from chunkatlas.errors import ChunkatlasError


def load_schema(path: str | os.PathLike = SCHEMA_PATH) -> dict:
    """The package's schema, or the one at ``path``."""
    if Path(path) == SCHEMA_PATH:
        return _package_schema()
    return yaml.safe_load(Path(path).read_text())


def fill_defaults(config: dict, schema: dict) -> dict:
    """Copy of ``config`` with every missing property that has a schema default filled in."""
    filled = copy.deepcopy(config)
    for key, sub in schema.get("properties", {}).items():
        if key not in filled and "default" in sub:
            filled[key] = copy.deepcopy(sub["default"])
        if isinstance(filled.get(key), dict) and sub.get("type") == "object":
            filled[key] = fill_defaults(filled[key], sub)
    return filled


def describe_error(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"config {where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {allowed}"
    if error.validator == "required":
        missing = error.message.split("'")[1]
        what = error.schema.get("properties", {}).get(missing, {}).get("description", "")
        return f"config {where}: {error.message}" + (f" ({what})" if what else "")
    if error.validator == "enum":
        allowed = ", ".join(map(repr, error.validator_value))
        return f"config {where}: {error.instance!r} is not one of {allowed}"
    return f"config {where}: {error.message}"


def describe_errors(errors: list[jsonschema.ValidationError]) -> str:
    """Every schema error of a config in one line: a config missing ``tissues`` and ``chunks``
    hears of both at once, not of one per run."""
    described = list(dict.fromkeys(describe_error(error) for error in errors))
    if len(described) == 1:
        return described[0]
    numbered = "; ".join(f"({i}) {text}" for i, text in enumerate(described, 1))
    return f"{len(described)} problems: {numbered}"


#: The X layer of a SOMA source when the config names none (the Census keeps counts in raw).
SOMA_LAYER = "raw"


def read_configfile(path: str | os.PathLike) -> dict:
    """A YAML config file as a mapping, or one line saying why it cannot be."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ChunkatlasError(f"config file {str(path)!r} does not exist") from None
    except (OSError, yaml.YAMLError) as err:
        problem = str(err).splitlines()[0]
        raise ChunkatlasError(
            f"config file {str(path)!r} is not readable YAML: {problem}"
        ) from None
    if not isinstance(config, dict):
        raise ChunkatlasError(f"config file {str(path)!r} must hold a mapping of config keys")
    return config


def refuse_replaced_keys(config: dict) -> None:
    """One line for a key an older chunkatlas took, saying what to write instead."""
    rechunk = config.get("rechunk")
    if isinstance(rechunk, dict) and "dense_axis" in rechunk:
        axis = rechunk["dense_axis"]
        instead = (
            "orientations: [genes] with gene_chunks: [...] (genes per chunk)"
            if axis == "var"
            else "orientations: [cells] (the default; chunks: cells per chunk)"
        )
        raise ChunkatlasError(
            f"config rechunk.dense_axis: {axis!r} is replaced by store orientations: write "
            f"{instead} and remove the rechunk section"
        )


def validate_config(config: dict, schema: dict, sections: list[str] | None = None) -> dict:
    """Validate ``config`` against ``schema``; return it with defaults filled in.

    With ``sections``, only those top-level keys are allowed and checked (one CLI command's).

    Raises
    ------
    ChunkatlasError
        One line naming every bad key or value the schema finds and what is allowed (then
        the first problem of the keys' combinations).
    """
    if sections is not None:
        schema = {
            **schema,
            "properties": {k: schema["properties"][k] for k in sections},
            "required": [k for k in schema.get("required", []) if k in sections],
        }
    refuse_replaced_keys(config or {})
    filled = fill_defaults(config or {}, schema)
    if "demo_atlas" in filled and isinstance(filled.get("run"), str):
        # The demo atlas is built inside the run's folder unless placed there explicitly.
        source = filled.setdefault("source", {})
        if isinstance(source, dict) and "uri" not in source:
            source["uri"] = f"{RESULTS}/{filled['run']}/demo_atlas.soma"
            filled = fill_defaults(filled, schema)
    source = filled.get("source")
    if isinstance(source, dict) and source.get("kind") == "soma" and source.get("layer") is None:
        source["layer"] = SOMA_LAYER  # a SOMA Experiment's counts: the Census's X layer
    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(filled))
    if errors:
        raise ChunkatlasError(describe_errors(errors))
    if "demo_atlas" in filled and "source" in filled:
        confined_output(filled["source"]["uri"], "source.uri", run_folder(filled))
    # The engines and flavors allowed are the schema's enums; what a flavor needs of X (raw
    # counts or not) is the analysis's to say, when the settings are built from this config.
    analysis = filled.get("analysis", {})
    if analysis and analysis["n_comps"] >= analysis["n_top_genes"]:
        raise ChunkatlasError(
            f"config analysis.n_comps: {analysis['n_comps']} must be below "
            f"analysis.n_top_genes ({analysis['n_top_genes']})"
        )
    if filled.get("zarr_format") == 2 and max(filled.get("shards", [1])) > 1:
        raise ChunkatlasError(
            f"config shards: {filled['shards']} need zarr_format 3 (zarr v2 has no shards)"
        )
    demo_genes = filled.get("demo_atlas", {}).get("n_genes")
    if analysis and demo_genes is not None and analysis["n_top_genes"] > demo_genes:
        raise ChunkatlasError(
            f"config analysis.n_top_genes: {analysis['n_top_genes']} is more than the demo "
            f"atlas's genes (demo_atlas.n_genes: {demo_genes})"
        )
    return filled


RESULTS = "results"


def run_folder(config: dict) -> str:
    """The results folder of a run: results/RUN."""
    return f"{RESULTS}/{config['run']}"


def confined_output(path: str, key: str, folder: str) -> str:
    """Refuse an output path from config that would land outside the run's results folder."""
    parts, top = Path(path).parts, Path(folder).parts
    inside = parts[: len(top)] == top and len(parts) > len(top)
    if Path(path).is_absolute() or not inside or ".." in parts:
        raise ChunkatlasError(
            f"config {key}: {path!r} is written by the workflow, so it must be a relative path "
            f"inside this run's folder {folder}/ without '..'"
        )
    return path


def coerce_to_schema(value: object, schema: dict) -> object:
    """``value`` with strings read as YAML where the schema wants no string (an integer, a
    number, a boolean or null): Snakemake's ``--config chunks=[300]`` gives ``['300']``."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        return {k: coerce_to_schema(v, properties.get(k, {})) for k, v in value.items()}
    if isinstance(value, list):
        return [coerce_to_schema(v, schema.get("items", {})) for v in value]
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if "enum" in schema:
        kinds = sorted({type(v).__name__ for v in schema["enum"]})
    if isinstance(value, str) and kinds and "string" not in kinds and "str" not in kinds:
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def tissue_folder(tissue: str) -> str:
    """Folder name for a tissue: Census names have spaces ("bone marrow" -> "bone_marrow")."""
    folder = re.sub(r"[^A-Za-z0-9.-]+", "_", tissue.strip()).strip("_.")
    if not folder:
        raise ChunkatlasError(f"tissue name {tissue!r} has no letters or digits to name a folder")
    return folder


def tissue_folders(tissues: list[str]) -> dict[str, str]:
    """Map folder name -> tissue name, refusing two tissues that would share a folder."""
    folders: dict[str, str] = {}
    for tissue in tissues:
        folder = tissue_folder(tissue)
        if folder in folders:
            raise ChunkatlasError(
                f"tissues {folders[folder]!r} and {tissue!r} would share folder {folder!r}"
            )
        folders[folder] = tissue
    return folders


def config_hash(config: dict) -> str:
    """Short, stable hash of a configuration (recorded in outputs for provenance)."""
    canonical = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
