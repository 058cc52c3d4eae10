"""Where a store lives (chunkatlas.store._location): a local path made absolute or a URL, how it
is read, never printed with its credentials, and opened once per analysis and process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chunkatlas.store import RemoteSettings, StoreLocation, is_remote


@pytest.mark.parametrize(
    ("where", "remote"),
    [
        ("http://host/x.zarr", True),
        ("https://host/x.zarr", True),
        ("s3://bucket/x.zarr", True),
        ("/data/x.zarr", False),
        (Path("results/x.zarr"), False),
        ("scanpy:pbmc68k_reduced", False),
        ("gs://bucket/x.zarr", False),  # not a scheme chunkatlas reads
    ],
)
def test_http_https_and_s3_are_remote(where, remote):
    assert is_remote(where) is remote


def test_a_local_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    location = StoreLocation.of("results/x.zarr")
    assert location.url == os.path.join(str(tmp_path), "results", "x.zarr")
    assert not location.is_remote and location.read == "local"
    assert StoreLocation.of(location) is location


@pytest.mark.parametrize(
    ("url", "read"),
    [("http://h/x.zarr", "http"), ("https://h/x.zarr", "http"), ("s3://b/x.zarr", "s3")],
)
def test_a_url_is_kept_and_read_remotely(url, read):
    settings = RemoteSettings(attempts=2)
    location = StoreLocation.of(url + "/", settings)
    assert location.url == url and location.is_remote and location.read == read
    assert location.remote is settings
    assert StoreLocation.of(url).remote == RemoteSettings()  # the default settings


def test_a_location_never_prints_its_credentials():
    location = StoreLocation.of("https://reader:s3cret@host/x.zarr")
    assert str(location) == "https://***@host/x.zarr"
    assert location.url == "https://reader:s3cret@host/x.zarr"  # what is read keeps them


def test_each_analysis_opens_the_store_once_and_no_other_shares_it(small_store):
    one = StoreLocation.of(small_store)
    assert one.open() is one.open()
    other = StoreLocation.of(small_store)  # another analysis of the same path
    assert other.token != one.token
    assert other.open() is not one.open()
    assert other.open()["X"].attrs["shape"] == [60, 12]
