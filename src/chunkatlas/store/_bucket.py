"""A bucket's address and reach (:class:`Bucket`: its prefix, the s3fs options that reach it),
and what moving a store as one object per file counts (:func:`directory_objects`, the JSON
record of it).  How a workflow run keeps its stores there is :mod:`chunkatlas.workflow`'s."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chunkatlas.store._guarded import RemoteSettings
from chunkatlas.store._write import write_json_atomic


@dataclass(frozen=True)
class Bucket:
    """The object store a run writes to: ``prefix`` (``s3://BUCKET/PREFIX``, as given to
    ``--default-storage-prefix``) and the s3fs options that reach it (endpoint, region, keys;
    never printed)."""

    prefix: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def has_credentials(self) -> bool:
        """Whether the bucket can be reached with keys: given, or found by the AWS chain
        (environment, ~/.aws, an instance or task role)."""
        if self.storage_options.get("key"):
            return True
        import botocore.session

        return botocore.session.get_session().get_credentials() is not None

    def url(self, path: str | os.PathLike) -> str:
        """Where Snakemake keeps the workflow file ``path``: the prefix, then the path."""
        return f"{self.prefix}/{os.path.normpath(path)}"

    def reader(self, settings: RemoteSettings | None = None) -> RemoteSettings:
        """``settings`` (retries, timeout) with this bucket's options over their own."""
        settings = settings or RemoteSettings()
        return replace(
            settings, storage_options={**settings.storage_options, **self.storage_options}
        )

    def filesystem(self):
        import fsspec

        return fsspec.filesystem("s3", **self.storage_options)

    def put(self, local: str | os.PathLike, url: str) -> None:
        """Upload one file to ``url`` (an object of this bucket)."""
        self.filesystem().put_file(str(local), url)

    def read_json(self, url: str) -> dict:
        """The JSON object at ``url`` (FileNotFoundError if there is none)."""
        return json.loads(self.filesystem().cat_file(url))


def directory_objects(directory: str | os.PathLike) -> dict[str, int]:
    """The objects and bytes of a store as it moves to or from an object store: one object
    per file."""
    files = [p for p in Path(directory).rglob("*") if p.is_file()]
    return {"objects": len(files), "bytes": sum(p.stat().st_size for p in files)}


def write_objects_record(directory: str | os.PathLike, path: str | os.PathLike) -> None:
    """Record :func:`directory_objects` of a finished store at ``path``: the rule's declared
    output, so it exists only once the whole store does (in an object store, once the store is
    uploaded), and a store half written or half uploaded (the run killed) is a job to run
    again, never a finished one."""
    write_json_atomic(path, directory_objects(directory))


def read_objects_record(path: str | os.PathLike) -> dict[str, int]:
    return json.loads(Path(path).read_text())
