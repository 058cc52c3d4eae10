"""Masking credentials (chunkatlas.store._secrets.redact): user:password@ in URLs and
secret-looking query parameters, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from chunkatlas.store import redact


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("https://reader:s3cret@host/x.zarr", "https://***@host/x.zarr"),
        ("s3://AKIAXX:abc%2Fdef@bucket/key", "s3://***@bucket/key"),  # a '/' in it, escaped
        ("HTTP://user@host/a", "HTTP://***@host/a"),
        (
            "reading http://u:p@a/x and s3://k:s@b/y failed",
            "reading http://***@a/x and s3://***@b/y failed",
        ),
    ],
)
def test_user_and_password_in_urls_are_masked(text, masked):
    assert redact(text) == masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("https://h/x?token=abc123", "https://h/x?token=***"),
        (
            "https://h/x?page=2&X-Amz-Signature=f00d&b=1",
            "https://h/x?page=2&X-Amz-Signature=***&b=1",
        ),
        ("https://h/x?api_key=k1&secret=s2", "https://h/x?api_key=***&secret=***"),
        ("https://h/x?PASSWORD=hunter2", "https://h/x?PASSWORD=***"),
        ("https://h/x?X-Amz-Credential=AKIA%2F2024", "https://h/x?X-Amz-Credential=***"),
    ],
)
def test_secret_query_parameters_are_masked(text, masked):
    assert redact(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "https://example.org/data/store.zarr",
        "https://example.org/x?page=2&limit=50",
        "http://example.org/path/with@sign",  # an @ after the host is not a credential
        "/home/user/results/store.zarr",
        "user@host:/path/store.zarr",  # scp-style, no scheme
        "chunk 'X/data/c/1' is 12 bytes, manifest says 14",
    ],
)
def test_ordinary_text_and_urls_are_left_alone(text):
    assert redact(text) == text


def test_redact_takes_anything_printable():
    assert redact(Path("/data/x.zarr")) == "/data/x.zarr"
    assert redact(ValueError("s3://k:s@b/y")) == "s3://***@b/y"
