"""Outputs in an object store: where a workflow run keeps every output when Snakemake runs with
``--default-storage-provider s3`` (and, on executors that share no file system,
``--shared-fs-usage none``), and what moving a store there costs.

Stores are not Snakemake ``directory()`` outputs: Snakemake puts a ``.snakemake_timestamp`` file
into each, a file in the store that is not the store's (anndata warns of it; it would be uploaded
with the store).  A rule declares the store's record (``x.zarr`` -> ``x.objects.json``) instead,
and the job moves the store itself (:class:`WorkflowStore`): one object per file, as Snakemake
would, the record last.  Jobs that can read a store where it lies (analysis, the study of the
bucket) read it from its URL through the guarded reader.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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

    def filesystem(self):
        import fsspec

        return fsspec.filesystem("s3", **self.storage_options)

    def put(self, local: str | os.PathLike, url: str) -> None:
        """Upload one file to ``url`` (an object of this bucket)."""
        self.filesystem().put_file(str(local), url)

    def read_json(self, url: str) -> dict:
        """The JSON object at ``url`` (FileNotFoundError if there is none)."""
        return json.loads(self.filesystem().cat_file(url))


@dataclass(frozen=True)
class WorkflowStore:
    """A store a workflow job writes or reads, beside its record (the rule's declared output
    or input, see the module's text).

    ``path`` is where the job writes or finds the store on its own disk.  With the run's
    outputs in an object store, ``url`` is where the store is kept in ``bucket``: the writer
    uploads it there (:meth:`publish`) and a reader takes a copy (:meth:`local_copy`) or reads
    it in place (:attr:`where`).
    """

    path: str
    url: str | None = None
    bucket: Bucket | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """Where a job that reads the store in place reads it: its URL, else its path."""
        return self.url or self.path

    @property
    def in_bucket(self) -> tuple[str, Bucket] | None:
        """(URL, bucket) of the store in the run's object store, or None."""
        return None if self.bucket is None else (self.url, self.bucket)

    def clear(self) -> None:
        """Remove the previous run's store before a job writes it anew (Snakemake removed the
        record already: a store without a record is never read)."""
        shutil.rmtree(self.path, ignore_errors=True)

    def publish(self) -> None:
        """Put the finished store in the bucket, replacing what a previous run left there,
        and drop the local copy (a job's disk keeps no outputs, as Snakemake's own uploads)."""
        if self.bucket is None:
            return
        fs = self.bucket.filesystem()
        if fs.exists(self.url):
            fs.rm(self.url, recursive=True)
        files = [p for p in Path(self.path).rglob("*") if p.is_file()]
        keys = [f"{self.url}/{p.relative_to(self.path).as_posix()}" for p in files]
        fs.put([str(p) for p in files], keys)
        shutil.rmtree(self.path)

    @contextmanager
    def local_copy(self, beside: tuple[str | os.PathLike, ...] = ()) -> Iterator[str]:
        """The store on this job's disk: its path, or a private copy from the bucket under
        the same name, with the local files ``beside`` (e.g. its manifest) copied next to it
        as the workflow lays them out; the copy is removed when the block ends."""
        if self.bucket is None:
            yield self.path
            return
        parent = Path(self.path).parent
        parent.mkdir(parents=True, exist_ok=True)
        private = Path(tempfile.mkdtemp(prefix=f".{Path(self.path).name}.copy-", dir=parent))
        copy = private / Path(self.path).name
        try:
            fs = self.bucket.filesystem()
            keys = [key for key in fs.find(self.url) if not key.endswith("/")]
            prefix = self.url.removeprefix("s3://").rstrip("/") + "/"
            targets = [str(copy / key.removeprefix(prefix)) for key in keys]
            for target in targets:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
            fs.get(keys, targets)
            for file in beside:
                shutil.copy(file, private)
            yield str(copy)
        finally:
            shutil.rmtree(private, ignore_errors=True)


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
