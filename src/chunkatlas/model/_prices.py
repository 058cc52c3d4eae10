"""What a store costs in money on an object store: storing it, reading it and writing it.

:class:`Prices` holds a price table in US dollars; its defaults are AWS S3 Standard's list prices
in us-east-1 as published in 2026 (check the provider's page; prices change): GET and HEAD
requests $0.0004 per 1,000, PUT requests $0.005 per 1,000, storage $0.023 per GB-month (the
first 50 TB of a month), and data transfer out $0 per GB, as for a reader inside the provider's
region (reading from outside it costs a transfer price per GB: give it in a price file).
:func:`load_prices` reads another table from a YAML or JSON file.  A GB is 10^9 bytes here, as
sizes are shown everywhere in chunkatlas.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from chunkatlas.errors import ChunkatlasError
from chunkatlas.model._text import money_text

BYTES_PER_GB = 1e9
#: The keys of a price file that are numbers (USD), and what each one prices.
PRICE_KEYS = {
    "get_per_1000": "GET/HEAD requests, per 1,000",
    "put_per_1000": "PUT requests, per 1,000",
    "gb_month": "storage, per GB-month",
    "transfer_gb": "data transfer out, per GB",
}
#: The keys of a price file that are text.
TEXT_KEYS = ("name", "dated")


@dataclass(frozen=True)
class Prices:
    """A price table of an object store, in US dollars.

    The defaults are AWS S3 Standard, us-east-1 list prices as published in 2026 (check the
    provider's page): ``get_per_1000`` GET/HEAD requests per 1,000 ($0.0004), ``put_per_1000``
    PUT requests per 1,000 ($0.005), ``gb_month`` storage per GB-month ($0.023, the first 50 TB),
    ``transfer_gb`` data transfer out per GB ($0.0: read inside the provider's region).
    ``name`` and ``dated`` say whose prices they are and when they were published.
    """

    get_per_1000: float = 0.0004
    put_per_1000: float = 0.005
    gb_month: float = 0.023
    transfer_gb: float = 0.0
    name: str = "AWS S3 Standard, us-east-1"
    dated: str = "list prices as published in 2026; check the provider's page"

    def describe(self) -> str:
        """One line: whose prices, when, and the four of them."""
        where = "" if self.transfer_gb else " (read inside the provider's region)"
        return (
            f"prices: {self.name} ({self.dated}): GET {money_text(self.get_per_1000)} and PUT "
            f"{money_text(self.put_per_1000)} per 1,000 requests, storage "
            f"{money_text(self.gb_month)} per GB-month, transfer out "
            f"{money_text(self.transfer_gb)} per GB{where}"
        )

    def storage_per_month(self, n_bytes: float) -> float:
        """Dollars a month to store ``n_bytes``."""
        return n_bytes / BYTES_PER_GB * self.gb_month

    def per_1000_reads(self, requests: float, n_bytes: float) -> float:
        """Dollars for 1,000 reads of a pattern that makes ``requests`` GET requests and moves
        ``n_bytes`` each time."""
        return requests * self.get_per_1000 + 1_000 * n_bytes / BYTES_PER_GB * self.transfer_gb

    def writing(self, objects: float) -> float:
        """Dollars of PUT requests to write a store of ``objects`` objects, one PUT each."""
        return objects / 1_000 * self.put_per_1000


def load_prices(path: str | Path) -> Prices:
    """The price table in the YAML or JSON file at ``path``: any of the keys of
    :data:`PRICE_KEYS` (non-negative numbers, USD) and :data:`TEXT_KEYS`; a key left out keeps
    the default's value (prices without a ``name`` are named after the file).

    Raises
    ------
    ChunkatlasError
        One line naming the file and the bad key or value, and what is allowed: the file is
        missing or is no YAML/JSON mapping, a key is unknown, a price is no number or negative.
    """
    path = Path(path)
    allowed = f"allowed keys: {', '.join([*PRICE_KEYS, *TEXT_KEYS])}"
    if not path.is_file():
        raise ChunkatlasError(f"price file not found: {path} (a YAML or JSON file; {allowed})")
    text = path.read_text(encoding="utf-8")
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        problem = " ".join(str(err).split())
        raise ChunkatlasError(f"price file {path} is not YAML or JSON ({problem})") from None
    if not isinstance(values, dict):
        held = "nothing" if values is None else repr(values)[:40]
        raise ChunkatlasError(
            f"price file {path} holds {held}, not a mapping of prices ({allowed})"
        )
    for key, value in values.items():
        if key in TEXT_KEYS:
            if not isinstance(value, str):
                raise ChunkatlasError(f"price file {path}: {key}: {value!r} is not text")
            continue
        if key not in PRICE_KEYS:
            raise ChunkatlasError(f"price file {path}: unknown key {key!r} ({allowed})")
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0:
            raise ChunkatlasError(
                f"price file {path}: {key}: {value!r} is not a price; it must be a number of "
                f"US dollars, 0 or more ({PRICE_KEYS[key]})"
            )
    given = {key: float(v) if key in PRICE_KEYS else v for key, v in values.items()}
    if "name" not in given and set(given) & set(PRICE_KEYS):  # not the default's prices
        given = {"name": path.name, "dated": "no date given", **given}
    return replace(Prices(), **given)
