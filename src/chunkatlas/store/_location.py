"""Where a store lives — a local path or an http(s)/s3 URL — and opening it in any process.

Dask tasks carry a :class:`StoreLocation`, never an open store: each worker opens the store
itself (a remote one once per analysis and process) and reads its own chunks, so nothing of X
passes through the driver and no worker needs another's file system.  Every read is counted
(:mod:`chunkatlas.store._counting`).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import zarr

from chunkatlas.store._secrets import redact

if TYPE_CHECKING:
    from chunkatlas.store._guarded import RemoteSettings

REMOTE_SCHEMES = ("http://", "https://", "s3://")


def is_remote(path: object) -> bool:
    return str(path).startswith(REMOTE_SCHEMES)


@dataclass(frozen=True)
class StoreLocation:
    """A store's address and how to read it.

    ``url`` is an absolute local path or an http(s)/s3 URL; ``remote`` the retries, timeout and
    fsspec options for a URL; ``manifest`` whether a manifest sits beside a remote store (None:
    not looked yet, and one is required; the driver looks once, so workers need not).
    ``token`` names one analysis: a process keeps the store it opened for the tasks of the same
    analysis only, so a store rewritten at the same place is never read through stale metadata.
    """

    url: str
    remote: RemoteSettings | None = field(default=None, repr=False)
    manifest: bool | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex, repr=False)

    @classmethod
    def of(cls, store: str | os.PathLike | StoreLocation, remote: RemoteSettings | None = None):
        """The location of ``store``: a URL as given (read with ``remote``, or the default
        settings), a local path made absolute (workers may run in another directory)."""
        if isinstance(store, StoreLocation):
            return store
        if is_remote(store):
            from chunkatlas.store._guarded import RemoteSettings

            return cls(str(store).rstrip("/"), remote or RemoteSettings())
        return cls(os.path.abspath(store))

    @property
    def is_remote(self) -> bool:
        return self.remote is not None

    @property
    def read(self) -> str:
        """How the store is read: "local", "http" (or https) or "s3"."""
        return self.url.split("://")[0].removesuffix("s") if self.is_remote else "local"

    def __str__(self) -> str:  # for messages: never the credentials
        return redact(self.url)

    def __repr__(self) -> str:  # tracebacks and logs of Dask tasks: never the credentials
        return f"StoreLocation({str(self)!r}, manifest={self.manifest!r})"

    def probed(self) -> StoreLocation:
        """This location, with ``manifest`` saying whether a manifest guards the remote store
        (one without is read with a warning that missing chunks cannot be detected); the
        store stays open in this process for what follows."""
        if not self.is_remote or self.manifest is not None:
            return self
        from chunkatlas.store._guarded import NO_MANIFEST, open_remote_group

        group, manifest = open_remote_group(self.url, self.remote, require_manifest=False)
        keep_open(self.token, group)
        return replace(self, manifest=manifest is not NO_MANIFEST)

    def open(self) -> zarr.Group:
        """The store's root group, every read counted (:mod:`chunkatlas.store._counting`).

        A process opens a store once per analysis (a remote one's manifest and consolidated
        metadata are two requests; a local one's metadata several files), so the reads of a
        pass are its chunks.
        """
        with _opening:
            group = _opened.get(self.token)
            if group is None:
                group = self._open_anew()
                keep_open(self.token, group)
            return group

    def _open_anew(self) -> zarr.Group:
        if self.is_remote:
            from chunkatlas.store._guarded import open_remote_group

            group, _ = open_remote_group(
                self.url, self.remote, without_manifest=self.manifest is False
            )
            return group
        from zarr.storage import LocalStore

        from chunkatlas.store._counting import CountedStore

        return zarr.open_group(CountedStore(LocalStore(self.url, read_only=True)), mode="r")


def open_on_workers(client, location: StoreLocation) -> None:
    """Have every worker of ``client`` open the store now, all at once, rather than in the
    first task each runs (for a remote store, two round trips before its first chunk)."""
    client.run(_open, location)


def _open(location: StoreLocation) -> None:
    location.open()


def keep_open(token: str, group: zarr.Group) -> None:
    with _opening:
        _opened[token] = group
        while len(_opened) > KEEP_OPEN:
            _opened.popitem(last=False)


#: Remote stores each process keeps open (one per analysis it took part in, the latest first).
KEEP_OPEN = 4
_opened: OrderedDict[str, zarr.Group] = OrderedDict()
_opening = threading.RLock()  # one thread opens a store, the others wait for it
