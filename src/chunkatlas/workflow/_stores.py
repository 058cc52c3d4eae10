"""Where a workflow run keeps its stores, and how a job finds, writes and moves them.

Stores are not Snakemake ``directory()`` outputs: Snakemake puts a ``.snakemake_timestamp`` file
into each, a file in the store that is not the store's (anndata warns of it; it would be uploaded
with the store).  A rule declares the store's completion record instead (``x.zarr`` ->
``x.objects.json``: the store's objects and bytes, written once the whole store is), and its job
derives the store from that path (:func:`store_of`) and moves the store itself
(:class:`WorkflowStore`): one object per file, as Snakemake would, the record last.  Jobs that
can read a store where it lies (analysis, the study of the bucket) read it from its URL through
the guarded reader.

With ``--default-storage-provider s3`` Snakemake keeps a job's declared files under
``.snakemake/storage/s3/BUCKET/KEY`` on the job's disk (or under another local storage prefix):
the store's URL in the bucket is derived from that path as well (:func:`store_in`), so a rule's
params name no path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chunkatlas.store import Bucket

#: A store's completion record beside it: ``NAME.zarr`` (or ``.soma``) -> ``NAME.objects.json``.
RECORD_SUFFIX = ".objects.json"
STORE_SUFFIXES = (".zarr", ".soma")


def record_of(store: str | os.PathLike) -> str:
    """The completion record of ``store`` (``x.zarr`` -> ``x.objects.json``)."""
    store = str(store)
    for suffix in STORE_SUFFIXES:
        if store.endswith(suffix):
            return store.removesuffix(suffix) + RECORD_SUFFIX
    raise ValueError(f"{store!r} is not a store (names end in {', '.join(STORE_SUFFIXES)})")


def store_of(record: str | os.PathLike, suffix: str = ".zarr") -> str:
    """The store whose completion record is ``record`` (``x.objects.json`` -> ``x.zarr``;
    ``suffix`` ".soma" for a SOMA Experiment)."""
    record = str(record)
    if not record.endswith(RECORD_SUFFIX):
        raise ValueError(f"{record!r} is not a completion record (*{RECORD_SUFFIX})")
    return record.removesuffix(RECORD_SUFFIX) + suffix


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
        try:
            fs.put([str(p) for p in files], keys)
        except FileNotFoundError:
            # no bucket yet: make it, as Snakemake's S3 storage does for the run's other
            # files (a job can finish before any of them is uploaded)
            bucket_name = self.url.removeprefix("s3://").split("/", 1)[0]
            if fs.exists(bucket_name):
                raise
            fs.mkdir(bucket_name)
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


@contextmanager
def local_copies(
    stores: list[WorkflowStore], manifests: list[str | os.PathLike]
) -> Iterator[list[str]]:
    """Each of ``stores`` on this job's disk with its manifest beside it, as a server of the
    job serves them (:meth:`WorkflowStore.local_copy`); the copies are removed after."""
    with ExitStack() as copies:
        yield [
            copies.enter_context(store.local_copy(beside=(manifest,)))
            for store, manifest in zip(stores, manifests, strict=True)
        ]


def store_in(record: str | os.PathLike, bucket: Bucket | None, suffix: str = ".zarr"):
    """The :class:`WorkflowStore` of the completion record at ``record`` (a job's declared
    input or output): on this disk beside it, and with the run's outputs in ``bucket``, at the
    URL its place under Snakemake's local storage names."""
    path = store_of(record, suffix)
    if bucket is None:
        return WorkflowStore(path)
    # Snakemake keeps s3://BUCKET/KEY at LOCAL_PREFIX/s3/BUCKET/KEY (LOCAL_PREFIX is
    # .snakemake/storage unless --local-storage-prefix says otherwise); KEY starts with the
    # run's prefix
    normal = os.path.normpath(path)
    marker = f"s3/{bucket.prefix.removeprefix('s3://').rstrip('/')}/"
    at = normal.find(marker)
    if at < 0 or (at and normal[at - 1] != "/"):
        raise ValueError(
            f"{record!r} is not Snakemake's local copy of an object of {bucket.prefix}"
        )
    return WorkflowStore(path, "s3://" + normal[at + len("s3/") :], bucket)


def bucket_of_storage_settings(
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
    return Bucket(prefix.rstrip("/"), options)
