"""Reading consolidated AnnData zarr stores over http(s) and s3, guarded by their manifests.

zarr reads a chunk whose fetch raised FileNotFoundError as missing and fills it with the fill
value, and fsspec turns every HTTP 404 (s3: NoSuchKey) into FileNotFoundError: one transient 404
would become zeros in X.  The :class:`GuardedStore` closes this: every chunk the store's
manifest lists must arrive, with the size and checksum the manifest records, or the read is
retried and then fails with the chunk named.  Transient failures (5xx, resets, timeouts) are
retried with backoff within a deadline; refused credentials fail at once.

A sharded array is read by byte ranges (the shard's index at its end, then the inner chunks it
points to), so a shard file's CRC-32 in the manifest can be checked only when it is read whole.
Ranged reads are checked by length, and, for chunkatlas's codec presets, whose inner chunks and
index each end with a CRC-32C, by that checksum: a damaged range is read again, then fails with
the shard named.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import google_crc32c
import zarr
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.storage import FsspecStore, WrapperStore

from chunkatlas._schema import default_field
from chunkatlas.errors import ChunkatlasError
from chunkatlas.store._counting import count_read, size_of
from chunkatlas.store._manifest import manifest_location
from chunkatlas.store._secrets import redact

log = logging.getLogger(__name__)


#: The analysis reads a whole object larger than this as byte ranges of this size, requested
#: together: object stores (and the emulated network) cap each stream, not the link.
PART_BYTES = 2 * 2**20
#: Ranges of one object in flight at once.
PARTS_IN_FLIGHT = 8


@dataclass(frozen=True)
class RemoteSettings:
    """How hard to try: attempts per request, first backoff, and the deadline per request;
    ``part_bytes``: objects larger than this are read in ranges of this size, together (None:
    each object in one request, as zarr's own readers do, and as the study measures)."""

    attempts: int = default_field("remote.attempts")
    backoff_seconds: float = 0.1
    timeout_seconds: float = default_field("remote.timeout_seconds")
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)  # keys
    part_bytes: int | None = None


class CredentialsRefused(ChunkatlasError):
    pass


class NoManifest(ChunkatlasError):
    pass


def classify(err: BaseException) -> str:
    """ "credentials", "transient" or "fatal" for an exception raised by a fetch."""
    status = getattr(err, "status", None) or getattr(err, "status_code", None)
    if isinstance(err, PermissionError) or status in (401, 403):
        return "credentials"
    if status is not None:
        return "transient" if status >= 500 or status in (408, 429) else "fatal"
    if isinstance(err, asyncio.TimeoutError | TimeoutError | ConnectionError | OSError):
        return "transient"
    module = type(err).__module__
    if module.startswith(("aiohttp", "botocore", "aiobotocore")):
        return "transient"
    return "fatal"


class GuardedStore(WrapperStore):
    """A read-only store that never lets a failed or wrong read through as data.

    With ``settings.part_bytes``, a whole object larger than it is read as ranges requested
    together (object stores cap each stream, not the link), each retried alone, the whole
    checked.

    Parameters
    ----------
    store
        The store to read from (an FsspecStore for http/s3).
    expected
        Chunk key -> [size in bytes, CRC-32 hex], from the manifest.
    url
        For messages (credentials are redacted).
    sealed
        Keys of shard files whose inner chunks and index each end with a CRC-32C.
    """

    def __init__(
        self,
        store,
        expected: Mapping[str, list],
        url: str,
        settings: RemoteSettings,
        sealed: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(store)
        self._expected = dict(expected)
        self._url = redact(url)
        self._settings = settings
        self._sealed = frozenset(sealed)

    def _with_store(self, store):
        return type(self)(store, self._expected, self._url, self._settings, self._sealed)

    async def get(self, key, prototype, byte_range=None):
        expected = self._expected.get(key)
        part = self._settings.part_bytes
        if byte_range is None and expected and part is not None and expected[0] > part:
            return await self._read_in_parts(key, prototype, expected[0])
        # A shard's index is read by its suffix: one unit ending in its own CRC-32C.
        sealed = key in self._sealed and isinstance(byte_range, SuffixByteRequest)
        return await self._read(key, prototype, byte_range, sealed=sealed)

    async def get_ranges(
        self,
        key,
        byte_ranges,
        *,
        prototype,
        max_concurrency=None,
        max_gap_bytes=None,
        max_coalesced_bytes=None,
    ):
        """The inner chunks of one shard: zarr's coalescing of nearby ranges, run over
        :meth:`get` (the wrapped store's own would bypass the checks); then each inner chunk of a
        sealed shard is checked alone and, if damaged, read again alone."""
        options = {
            "max_concurrency": max_concurrency,
            "max_gap_bytes": max_gap_bytes,
            "max_coalesced_bytes": max_coalesced_bytes,
        }
        ranges = Store.get_ranges(
            self,
            key,
            byte_ranges,
            prototype=prototype,
            **{name: value for name, value in options.items() if value is not None},
        )
        try:
            async for group in ranges:
                checked = []
                for index, value in group:
                    if key in self._sealed and crc32c_problem(value.to_bytes()):
                        value = await self._read(key, prototype, byte_ranges[index], sealed=True)
                    checked.append((index, value))
                yield checked
        except BaseExceptionGroup as errors:  # zarr gathers the fetches' errors: ours is one line
            ours = errors.subgroup(ChunkatlasError)
            if ours is None:
                raise
            while isinstance(ours, BaseExceptionGroup):
                ours = ours.exceptions[0]
            raise ours from None

    async def _read(self, key, prototype, byte_range, *, sealed: bool):
        """``key`` (``byte_range`` of it), retried until it passes :meth:`_check`."""
        settings = self._settings
        deadline = time.monotonic() + settings.timeout_seconds
        problem = ""
        for attempt in range(settings.attempts):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            count_read(requests=1, retries=1 if attempt else 0)
            try:
                value = await asyncio.wait_for(
                    self._store.get(key, prototype, byte_range), timeout=remaining
                )
                count_read(nbytes=size_of(value))
            except Exception as err:  # noqa: BLE001 - sorted by classify
                kind = classify(err)
                if kind == "credentials":
                    raise CredentialsRefused(
                        f"credentials refused reading {self._url}/{key}: {type(err).__name__}"
                    ) from None
                if kind == "fatal":
                    raise
                problem = f"{type(err).__name__}: {redact(str(err))[:200]}"
            else:
                problem = self._check(key, value, byte_range, sealed=sealed)
                if not problem:
                    return value
            pause = settings.backoff_seconds * 2**attempt * (0.5 + random.random())
            await asyncio.sleep(max(0.0, min(pause, deadline - time.monotonic())))
        raise ChunkatlasError(
            f"reading {self._noun(key)} {key!r} of {self._url} failed after {attempt + 1} "
            f"attempt(s) within {settings.timeout_seconds:g} s: {problem or 'timed out'}"
        )

    async def _read_in_parts(self, key, prototype, size: int):
        """A whole object of ``size`` bytes as ranges of ``part_bytes`` requested together,
        each retried on its own (:meth:`_read`), then joined and checked whole against the
        manifest; the whole is read again if that check fails."""
        in_flight = asyncio.Semaphore(PARTS_IN_FLIGHT)

        async def read(byte_range: RangeByteRequest):
            async with in_flight:
                return await self._read(key, prototype, byte_range, sealed=False)

        part = self._settings.part_bytes
        ranges = [RangeByteRequest(at, min(at + part, size)) for at in range(0, size, part)]
        problem = ""
        for _ in range(self._settings.attempts):
            parts = await asyncio.gather(*(read(byte_range) for byte_range in ranges))
            value = prototype.buffer.from_bytes(b"".join(value.to_bytes() for value in parts))
            problem = self._check(key, value, None)
            if not problem:
                return value
        raise ChunkatlasError(
            f"reading {self._noun(key)} {key!r} of {self._url} in parts failed "
            f"{self._settings.attempts} time(s): {problem}"
        )

    def _noun(self, key: str) -> str:
        return "shard" if key in self._sealed else "chunk"

    def _check(self, key: str, value, byte_range, *, sealed: bool = False) -> str:
        """Why ``value`` is not the right answer for ``key``, or "" if it is; ``sealed``: the
        bytes end with their own CRC-32C."""
        expected = self._expected.get(key)
        if value is None:
            return "missing, but the manifest lists it" if expected else ""
        data = value.to_bytes()
        if byte_range is not None:
            wanted = wanted_length(byte_range, expected[0] if expected else None)
            if wanted is not None and len(data) != wanted:
                return f"asked {wanted} bytes, got {len(data)}"
            return crc32c_problem(data) if sealed else ""
        if expected:
            size, crc = expected
            if len(data) != size:
                return f"got {len(data)} bytes, the manifest says {size}"
            if crc is not None and f"{zlib.crc32(data):08x}" != crc:
                return "checksum differs from the manifest"
        return ""

    async def get_partial_values(self, prototype, key_ranges):
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]


def wanted_length(byte_range, size: int | None) -> int | None:
    """Bytes a ranged read must return (None: cannot tell without the object's size)."""
    if isinstance(byte_range, RangeByteRequest):
        return byte_range.end - byte_range.start
    if size is None:
        return None
    if isinstance(byte_range, SuffixByteRequest):
        return min(byte_range.suffix, size)
    if isinstance(byte_range, OffsetByteRequest):
        return max(0, size - byte_range.offset)
    return None


def crc32c_problem(data: bytes) -> str:
    """Why ``data`` does not end with the CRC-32C of what precedes it (zarr's crc32c codec), or
    "" if it does."""
    if len(data) < 4:
        return f"{len(data)} bytes cannot hold a CRC-32C"
    if google_crc32c.value(data[:-4]) != int.from_bytes(data[-4:], "little"):
        return "fails its CRC-32C (damaged in storage or transit)"
    return ""


def sealed_keys(manifest: Mapping) -> frozenset[str]:
    """Keys of the shard files whose inner chunks end with a CRC-32C (the codec presets of
    :mod:`chunkatlas.rewrite._geometry`; zarr's default shard index does too)."""

    def sealed(array: Mapping) -> bool:
        last = array["compressors"][-1] if array["compressors"] else "{}"
        return bool(array.get("shards")) and json.loads(last).get("name") == "crc32c"

    return frozenset(
        f"{array['path']}/{key}"
        for array in manifest["arrays"]
        if sealed(array)
        for key in array["chunk_files"]
    )


def storage_options_for(url: str, settings: RemoteSettings) -> dict[str, Any]:
    """fsspec options: a request timeout for HTTP (aiohttp waits 300 s by default); for S3 one
    GET per whole object, unless the options say otherwise (s3fs would first ask each object's
    size with a HEAD, to split objects above its 50 MB block size into concurrent ranges: a
    second round trip for every chunk or shard, which are far smaller)."""
    options = dict(settings.storage_options)
    if url.startswith("s3://"):
        options.setdefault("max_concurrency", 1)
    if url.startswith(("http://", "https://")):
        import aiohttp

        client = dict(options.pop("client_kwargs", {}))
        client.setdefault("timeout", aiohttp.ClientTimeout(total=settings.timeout_seconds))
        options["client_kwargs"] = client
    return options


def fetch_manifest(url: str, settings: RemoteSettings) -> dict:
    """Read the manifest that sits next to a remote store, with the same retries."""
    import fsspec

    location = manifest_location(url)
    protocol = location.split("://", 1)[0]
    fs = fsspec.filesystem(protocol, **storage_options_for(url, settings))
    problem = ""
    for attempt in range(settings.attempts):
        count_read(requests=1, retries=1 if attempt else 0)
        try:
            content = fs.cat_file(location)
            count_read(nbytes=len(content))
            return json.loads(content)
        except FileNotFoundError:
            raise NoManifest(
                f"no manifest at {redact(location)}: remote stores are read only with the "
                "manifest that chunkatlas consolidate writes beside them"
            ) from None
        except Exception as err:  # noqa: BLE001
            if classify(err) == "credentials":
                raise CredentialsRefused(
                    f"credentials refused reading {redact(location)}: {type(err).__name__}"
                ) from None
            if classify(err) == "fatal":
                raise
            problem = f"{type(err).__name__}"
            time.sleep(settings.backoff_seconds * 2**attempt)
    raise ChunkatlasError(
        f"reading {redact(location)} failed after {settings.attempts} attempts: {problem}"
    )


NO_MANIFEST = {"consolidated": True, "arrays": [], "zarr_format": None}


def open_remote_group(
    url: str,
    settings: RemoteSettings | None = None,
    *,
    require_manifest: bool = True,
    without_manifest: bool = False,
) -> tuple[zarr.Group, dict | None]:
    """Open a consolidated AnnData store at an http(s)/s3 URL; return (group, manifest).

    Without its manifest (a store chunkatlas did not write, ``require_manifest=False``) reads
    are still retried and length-checked, but a chunk missing on the server cannot be told
    from one that was never written: that is logged as a warning.  ``without_manifest``: the
    caller knows there is none (Dask workers, after the driver looked): no request, no warning.
    """
    settings = settings or RemoteSettings()
    try:
        manifest = NO_MANIFEST if without_manifest else fetch_manifest(url, settings)
    except NoManifest:
        if require_manifest:
            raise
        log.warning("no manifest beside %s: missing chunks cannot be detected", redact(url))
        manifest = NO_MANIFEST
    if not manifest.get("consolidated"):
        raise ChunkatlasError(
            f"remote store {redact(url)} has no consolidated metadata "
            "(run chunkatlas consolidate on it)"
        )
    expected = {
        f"{array['path']}/{chunk}": entry
        for array in manifest["arrays"]
        for chunk, entry in array["chunk_files"].items()
    }
    inner = FsspecStore.from_url(
        url.rstrip("/"), storage_options=storage_options_for(url, settings), read_only=True
    )
    store = GuardedStore(inner, expected, url, settings, sealed_keys(manifest))
    try:
        group = zarr.open_consolidated(store, mode="r", zarr_format=manifest["zarr_format"])
    except ChunkatlasError:
        raise
    except Exception as err:
        raise ChunkatlasError(
            f"cannot open {redact(url)} as a zarr store with consolidated "
            f"metadata: {type(err).__name__}"
        ) from None
    if group.attrs.get("encoding-type") != "anndata" or "X" not in group:
        raise ChunkatlasError(f"not an AnnData store with X: {redact(url)}")
    return group, manifest
