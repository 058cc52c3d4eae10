"""Outputs in an object store: where a workflow run keeps every output when Snakemake runs with
``--default-storage-provider s3`` (and, on executors that share no file system,
``--shared-fs-usage none``), and what moving a store there costs.

Snakemake uploads a ``directory()`` output one object per file after its job, and retrieves it
the same way for a job that reads it.  Jobs that can read a store where it lies (analysis, the
study of the bucket) are given its URL instead, and read it through the guarded reader.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chunkatlas.store._guarded import RemoteSettings
from chunkatlas.store._write import write_json_atomic

#: Snakemake's own marker in every directory output, uploaded with it (one object more).
SNAKEMAKE_MARKER = ".snakemake_timestamp"


@dataclass(frozen=True)
class Bucket:
    """The object store a run writes to: ``prefix`` (``s3://BUCKET/PREFIX``, as given to
    ``--default-storage-prefix``) and the s3fs options that reach it (endpoint, region, keys;
    never printed)."""

    prefix: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_storage_settings(
        cls,
        prefix: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        token: str | None = None,
    ) -> Bucket:
        """The bucket of snakemake-storage-plugin-s3's settings (``--storage-s3-…`` or their
        ``SNAKEMAKE_STORAGE_S3_…`` variables); keys left out come from the usual AWS chain."""
        options: dict[str, Any] = {}
        if access_key:
            options.update(key=access_key, secret=secret_key)
        if token:
            options["token"] = token
        if region:
            options["client_kwargs"] = {"region_name": region}
        if endpoint_url:  # an S3-compatible server (MinIO, moto, Ceph): path-style addresses
            options.update(
                endpoint_url=endpoint_url, config_kwargs={"s3": {"addressing_style": "path"}}
            )
        return cls(prefix.rstrip("/"), options)

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

    def put(self, local: str | os.PathLike, url: str) -> None:
        """Upload one file to ``url`` (an object of this bucket)."""
        import fsspec

        fs = fsspec.filesystem("s3", **self.storage_options)
        fs.put_file(str(local), url)


def directory_objects(directory: str | os.PathLike) -> dict[str, int]:
    """The objects and bytes of a directory output as Snakemake moves it to or from an object
    store: one object per file, Snakemake's marker included (it adds one after the job)."""
    root = Path(directory)
    files = [p for p in root.rglob("*") if p.is_file() and p.name != SNAKEMAKE_MARKER]
    return {"objects": len(files) + 1, "bytes": sum(p.stat().st_size for p in files)}


def write_objects_record(directory: str | os.PathLike, path: str | os.PathLike) -> None:
    """Record :func:`directory_objects` of a finished directory output at ``path``.

    Rules declare this record after the directory: Snakemake uploads a job's outputs in their
    order, so in an object store the record exists only once the whole directory does, and a
    directory half uploaded (the run killed) is a job to run again, never a finished one.
    """
    write_json_atomic(path, directory_objects(directory))


def read_objects_record(path: str | os.PathLike) -> dict[str, int]:
    return json.loads(Path(path).read_text())
