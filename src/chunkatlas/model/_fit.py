"""A cost model of remote reads: seconds from round trips, bytes and decoding, per backend;
its fit (NNLS), its predictions and the recommendation it makes (the fastest geometry per
pattern).

For each backend, seconds ~ f[pattern] + rounds x a + stream_bytes x b + decode x c, all >= 0:

* ``f[pattern]`` is what a pattern costs whatever the layout (the metadata read before the
  data, the reader's own work on what it fetched);
* ``rounds`` are the read's round trips: its requests over the reader's concurrency, its
  arrays one after another (:mod:`._reader`); ``a`` is seconds per round trip, about the
  network's latency;
* ``stream_bytes`` are the bytes over the responses the reader keeps in flight; ``b`` is
  seconds per byte of one response: 1e-6 / b is one response's bandwidth in MB/s, and a read
  with ten responses in flight moves ten times that;
* ``decode`` is the seconds the read's bytes take to decode: its share of one decode pass of
  the store's X (``decode_seconds x bytes / store_bytes``), a pass costing a fixed time per
  chunk plus a time per byte for each codec (:func:`fit_decode`, measured on the stores' own
  chunk sizes); ``c`` scales it: 1 when decoding adds to the transfer, below 1 when it
  overlaps it.

The network terms are the network's, the reader decides how many of each a read costs: a
model fitted on one reader's reads predicts another's (``reader``).  Decoding is told apart
from transfer because its seconds come from local decode passes, which grow with bytes at a
different rate for each codec and chunk size; with a single codec and chunk size the decode
term would be a multiple of bytes, so it is then left out and the fit says why.

Rows are weighted by 1 / measured seconds: the fit minimises relative errors, so the
patterns that take milliseconds count as much as the ones that take seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.optimize

from chunkatlas.errors import ChunkatlasError
from chunkatlas.model._reader import DEFAULT_READER, read_features, reader_named
from chunkatlas.study import PATTERNS

GEOMETRY = ("orientation", "chunk", "shard", "codec")
FIT_COLUMNS = ("backend", "requests", "bytes", "seconds")
RECOMMEND_COLUMNS = ("tissue", "pattern", *GEOMETRY, "objects")


def _require(table: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ChunkatlasError(f"{what} needs column(s) {', '.join(missing)}: not in the table")


@dataclass(frozen=True)
class BackendFit:
    """The fitted costs of one backend, in the units of the model (see the module doc)."""

    backend: str
    seconds_per_round: float  # a: one round trip
    seconds_per_byte: float  # b: a byte of one response
    decode_scale: float | None  # c; None when the decode term is left out (see ``note``)
    r2: float  # of seconds, unweighted
    median_relative_error: float  # median of |predicted - measured| / measured
    rows: int
    latency_ms: float = math.nan  # the emulated network, when one setting was used throughout
    bandwidth_mbps: float = math.nan
    note: str = ""
    pattern_seconds: Mapping[str, float] = field(default_factory=dict)  # f[pattern]
    reader: str = DEFAULT_READER  # whose reads it was fitted on
    seconds_per_selected_byte: float = 0.0  # s: a byte selected in memory across the grain

    @property
    def megabytes_per_second(self) -> float:
        """One response's bandwidth; infinite when bytes cost nothing measurable."""
        return math.inf if self.seconds_per_byte == 0 else 1e-6 / self.seconds_per_byte

    def describe(self) -> str:
        """One line, e.g. "s3: 43 ms per round trip, 21 MB/s per response, decoding 1.3 × a
        local pass, fixed 1.4 s to open, 0.13 s per read of X; R² 0.82, median error 17%"."""
        decode = (
            "no decode term"
            if self.decode_scale is None
            else f"decoding {self.decode_scale:.2g} × a local pass"
        )
        opening = self.pattern_seconds.get("open")
        reading = [s for p, s in self.pattern_seconds.items() if p != "open"]
        fixed = ", fixed " + ", ".join(
            [f"{opening:.2g} s to open"] * (opening is not None)
            + [f"{reading[0]:.2g} s per read of X"] * bool(reading)
        )
        fixed = "" if fixed == ", fixed " else fixed
        selects = ""
        if self.seconds_per_selected_byte:
            selects = f", {1e-6 / self.seconds_per_selected_byte:.3g} MB/s selected in memory"
        return (
            f"{self.backend}: {self.seconds_per_round * 1e3:.3g} ms per round trip, "
            f"{self.megabytes_per_second:.3g} MB/s per response{selects}, {decode}{fixed}; "
            f"R² {self.r2:.3f}, median error {self.median_relative_error:.1%}"
        )

    def predict(self, rows: pd.DataFrame, reader: str | None = None) -> np.ndarray:
        """Seconds of each row's read by ``reader`` (None: the reader it was fitted on)."""
        x = _design(rows, self.decode_scale is not None, reader or self.reader)
        coefficients = [
            self.seconds_per_round,
            self.seconds_per_byte,
            self.seconds_per_selected_byte,
        ]
        if self.decode_scale is not None:
            coefficients.append(self.decode_scale)
        fixed = rows["pattern"].map(self.pattern_seconds).fillna(0.0) if self.pattern_seconds else 0
        return x @ np.array(coefficients) + np.asarray(fixed, dtype=float)


@dataclass(frozen=True)
class CostFit:
    """One :class:`BackendFit` per backend."""

    backends: Mapping[str, BackendFit]

    def __getitem__(self, backend: str) -> BackendFit:
        return self.backends[backend]

    def describe(self) -> str:
        return "\n".join(fit.describe() for fit in self.backends.values())

    def table(self) -> pd.DataFrame:
        """One row per backend with the coefficients in meaningful units."""
        return pd.DataFrame(
            [
                {
                    "backend": f.backend,
                    "seconds_per_round": f.seconds_per_round,
                    "megabytes_per_second": f.megabytes_per_second,
                    "decode_scale": f.decode_scale,
                    "latency_ms": f.latency_ms,
                    "reader": f.reader,
                    "bandwidth_mbps": f.bandwidth_mbps,
                    "r2": f.r2,
                    "median_relative_error": f.median_relative_error,
                    "rows": f.rows,
                    "note": f.note,
                }
                for f in self.backends.values()
            ]
        )


def _decode(rows: pd.DataFrame) -> pd.Series:
    """Seconds to decode the bytes of each row: its share of one decoded pass over X."""
    return rows["decode_seconds"] * rows["bytes"] / rows["store_bytes"]


def _design(
    rows: pd.DataFrame, decode: bool, reader: str = DEFAULT_READER, selects: bool = True
) -> np.ndarray:
    """The terms of each row: round trips, bytes at one response's speed, then (``selects``)
    bytes selected in memory and (``decode``) decode seconds."""
    features = read_features(rows, reader_named(reader))
    columns = [features[:, 0], features[:, 1]]
    columns += [features[:, 2]] if selects else []
    columns += [_decode(rows)] if decode else []
    return np.column_stack([np.asarray(c, dtype=float) for c in columns])


def _separable(x: np.ndarray) -> bool:
    """Whether no column is a multiple (or mix) of the others, scale aside."""
    scaled = x / np.abs(x).max(axis=0)
    return np.linalg.matrix_rank(scaled, tol=1e-6) == x.shape[1]


def _decode_note(rows: pd.DataFrame, reader: str) -> str:
    """Why the decode term cannot be fitted from these rows, or "" when it can."""
    if not {"decode_seconds", "store_bytes"} <= set(rows.columns):
        return "no decode term: no decode_seconds column"
    decode = _decode(rows)
    if not np.isfinite(decode).all() or not (decode > 0).any():
        return "no decode term: decode_seconds missing for some or all stores"
    if len(rows) <= 3:
        return "no decode term: too few rows for three coefficients"
    if not _separable(_design(rows, True, reader, selects=False)):
        return "no decode term: decoding costs the same per byte in every store"
    return ""


def _network(rows: pd.DataFrame, column: str) -> float:
    values = rows[column].dropna().unique() if column in rows.columns else []
    return float(values[0]) if len(values) == 1 else math.nan


def _fixed_group(pattern: str) -> str:
    return "open" if pattern == "open" else "read"


def _fit_backend(backend: str, rows: pd.DataFrame, reader: str) -> BackendFit:
    rows = rows[np.isfinite(rows["seconds"]) & (rows["seconds"] > 0)]
    if len(rows) < 3:  # two coefficients and a residual
        raise ChunkatlasError(
            f"cannot fit {backend}: {len(rows)} rows with positive seconds, need at least 3"
        )
    for column in ("requests", "bytes"):
        if not (rows[column] > 0).any():
            raise ChunkatlasError(f"cannot fit {backend}: column {column} is zero in every row")
    if not _separable(_design(rows, False, reader, selects=False)):
        raise ChunkatlasError(
            f"cannot fit {backend}: requests and bytes are proportional in every row, "
            "so their costs cannot be told apart (measure more chunk sizes or patterns)"
        )
    note = _decode_note(rows, reader)
    # Fixed costs: opening a store (its metadata), and one for every read of X (its group's
    # metadata); not one per pattern of X, which a fit would use to absorb what grows with the
    # atlas (a fixed 10 s for all of X at a million cells is wrong at 10^5 and at 10^8).
    patterns = sorted(rows["pattern"].unique()) if "pattern" in rows else []
    groups = sorted({_fixed_group(p) for p in patterns})
    fixed = [(rows["pattern"].map(_fixed_group) == g).to_numpy(float) for g in groups]
    design = _design(rows, not note, reader)
    x = np.column_stack([design, *fixed])
    measured = rows["seconds"].to_numpy(dtype=float)
    # Relative weights: each row's error as a share of its own seconds.
    coefficients, _ = scipy.optimize.nnls(x / measured[:, None], np.ones(len(measured)))
    fitted = x @ coefficients
    per_group = dict(zip(groups, map(float, coefficients[design.shape[1] :]), strict=True))
    pattern_seconds = {
        p: per_group[_fixed_group(p)] for p in PATTERNS if _fixed_group(p) in per_group
    }
    total = ((measured - measured.mean()) ** 2).sum()
    return BackendFit(
        backend=backend,
        seconds_per_round=float(coefficients[0]),
        seconds_per_byte=float(coefficients[1]),
        seconds_per_selected_byte=float(coefficients[2]),
        decode_scale=None if note else float(coefficients[3]),
        r2=float(1 - ((measured - fitted) ** 2).sum() / total) if total > 0 else math.nan,
        median_relative_error=float(np.median(np.abs(fitted - measured) / measured)),
        rows=len(rows),
        latency_ms=_network(rows, "latency_ms"),
        bandwidth_mbps=_network(rows, "bandwidth_mbps"),
        note=note,
        pattern_seconds=pattern_seconds,
        reader=reader,
    )


def fit_costs(table: pd.DataFrame, reader: str = DEFAULT_READER) -> CostFit:
    """Fit the cost model (module doc) to a remote table of ``reader``'s reads, separately for
    each backend."""
    _require(table, FIT_COLUMNS, "the cost fit")
    if table.empty:
        raise ChunkatlasError("cannot fit costs: the remote table has no rows")
    return CostFit(
        {
            str(b): _fit_backend(str(b), rows, reader)
            for b, rows in table.groupby("backend", sort=True)
        }
    )


def predicted(table: pd.DataFrame, fit: CostFit) -> pd.DataFrame:
    """The table with a ``predicted_seconds`` column from each row's backend fit."""
    _require(table, FIT_COLUMNS, "a prediction")
    unfitted = sorted(set(table["backend"].astype(str)) - set(fit.backends))
    if unfitted:
        raise ChunkatlasError(f"no cost fit for backend(s) {', '.join(unfitted)}")
    out = table.copy()
    out["predicted_seconds"] = np.nan
    for backend, rows in table.groupby("backend"):
        out.loc[rows.index, "predicted_seconds"] = fit[str(backend)].predict(rows)
    return out


def shard_text(shard: int) -> str:
    """ "unsharded", or e.g. "shard 8" (as the sentences word it)."""
    return "unsharded" if shard == 1 else f"shard {shard:,}"


def recommendation_sentence(best: pd.Series, reads: str = "") -> str:
    """E.g. "for one_gene reads over s3: gene-major, chunk 20 genes, shard 8, codec packed
    (0.21 s predicted, 0.23 s measured; 3 requests, 0.4 MB, 120 objects)"; ``reads`` words the
    pattern otherwise (e.g. "reading one gene across all cells")."""
    tissues = "" if best["tissues"] == 1 else f"; mean of {best['tissues']} tissues"
    reads = reads or f"for {best['pattern']} reads"
    return (
        f"{reads} over {best['backend']}: {best['orientation'][:-1]}-major, "
        f"chunk {best['chunk']:,} {best['orientation']}, {shard_text(best['shard'])}, codec "
        f"{best['codec']} ({best['predicted_seconds']:.3g} s predicted, {best['seconds']:.3g} s "
        f"measured; {best['requests']:,.0f} requests, {best['bytes'] / 1e6:.3g} MB, "
        f"{best['objects']:,.0f} objects{tissues})"
    )


def _pairs(rows: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(rows["backend"], rows["pattern"], strict=True))


NETWORK_COLUMNS = ("latency_ms", "bandwidth_mbps")


def recommend(table: pd.DataFrame, fit: CostFit) -> pd.DataFrame:
    """The fastest geometry (orientation, chunk, shard, codec) per backend and pattern, by the
    cost model's predicted seconds, with the measured median beside it.

    The prediction, not the single measured read, decides: it follows the measured requests,
    bytes and decode time, so geometries (and patterns) that move the same traffic get the same
    answer, where one noisy timing would tell them apart.  With several tissues, a geometry's
    seconds, requests and bytes are the mean over the tissues, and only geometries measured
    for every tissue compete, so each is compared on the same reads.  Ties go to fewer objects
    (files in the store: the inode and transfer cost), then fewer bytes, then the geometry in
    order, so the answer never depends on row order.  Every row carries its backend fit's R²
    and median relative error.
    """
    _require(table, (*FIT_COLUMNS, *RECOMMEND_COLUMNS), "a recommendation")
    rows = predicted(table, fit)
    keys = ["backend", "pattern"]
    mean = ["seconds", "predicted_seconds", "requests", "bytes", "objects"]
    per_geometry = (
        rows.groupby([*keys, *GEOMETRY], sort=False)
        .agg(**{c: (c, "mean") for c in mean}, tissues=("tissue", "nunique"))
        .reset_index()
    )
    # Only geometries every tissue of that backend and pattern was measured with compete.
    every = rows.groupby(keys)["tissue"].nunique().rename("of")
    per_geometry = per_geometry.join(every, on=keys)
    complete = per_geometry[per_geometry["tissues"] == per_geometry["of"]].drop(columns="of")
    lost = sorted(_pairs(per_geometry) - _pairs(complete))
    if lost:
        backend, pattern = lost[0]
        raise ChunkatlasError(
            f"no geometry was measured for every tissue of {pattern} reads over {backend}"
        )
    # Predictions equal to the last digits are ties: fewer objects decide.
    complete = complete.assign(rounded=complete["predicted_seconds"].round(9))
    order = [*keys, "rounded", "objects", "bytes", *GEOMETRY]
    best = complete.sort_values(order, kind="stable").groupby(keys, sort=False).head(1)
    best = best.drop(columns="rounded")
    rank = {p: i for i, p in enumerate(PATTERNS)}
    best = best.sort_values(
        ["backend", "pattern"], key=lambda s: s.map(rank) if s.name == "pattern" else s
    ).reset_index(drop=True)
    best["sentence"] = best.apply(recommendation_sentence, axis=1)
    best["fit_r2"] = best["backend"].map(lambda b: fit[b].r2)
    best["fit_median_error"] = best["backend"].map(lambda b: fit[b].median_relative_error)
    # The network the answer holds for, in every row (as in the remote table).
    for column in NETWORK_COLUMNS:
        if column in rows:
            network = rows.groupby("backend")[column].first()
            best[column] = best["backend"].map(network)
    return best


def recommendation_text(recommendations: pd.DataFrame) -> str:
    """Markdown: one bullet per backend and pattern, with the model's prediction."""
    return "\n".join(
        f"- {r.sentence}; the cost model predicts {r.predicted_seconds:.3g} s"
        for r in recommendations.itertuples()
    )
