"""The cost model ``chunkatlas advise`` uses, as a study run writes it (``cost_model.json``):
the fit per backend, what each codec stores, and the requests its reader adds; the reference
model shipped with chunkatlas, and loading either."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from importlib.resources import files
from pathlib import Path

import pandas as pd

from chunkatlas._version import __version__
from chunkatlas.errors import ChunkatlasError
from chunkatlas.model._fit import BackendFit, CostFit
from chunkatlas.model._traffic import Encoding, calibrate, encodings

#: The cost model shipped with the package: fitted on the million-cell study's reads
#: (``benchmarks/reference_model.py``; its "origin" and "provenance" say so).
REFERENCE_MODEL = "reference_cost_model.json"


@dataclass(frozen=True)
class CostModel:
    """Everything ``advise`` needs from a study run, as written to ``cost_model.json``."""

    fit: CostFit
    encodings: Mapping[tuple[str, str], Encoding]
    extra_requests: Mapping[tuple[str, str, bool], int]
    origin: str  # where the coefficients come from, for the reader of the advice
    # what it was fitted on: tissue, reads, network, reader, date (a run's: its own)
    provenance: Mapping[str, object] = field(default_factory=dict)

    def describe(self, backend: str) -> list[str]:
        """Lines for a person: where the model comes from, the backend's coefficients, and
        each codec's decode rate and stored bytes."""
        lines = [f"coefficients from {self.origin}"]
        if self.provenance:
            lines.append("fitted on: " + "; ".join(f"{k} {v}" for k, v in self.provenance.items()))
        lines.append(self.fit[backend].describe())
        lines.append(
            "decoding (a local pass): "
            + "; ".join(
                f"{codec} {orientation[:-1]}-major {encoding.describe()}"
                for (orientation, codec), encoding in sorted(self.encodings.items())
            )
        )
        return lines

    def to_json(self) -> str:
        return json.dumps(
            {
                "chunkatlas_version": __version__,
                "origin": self.origin,
                "provenance": dict(self.provenance),
                "backends": {b: asdict(f) for b, f in self.fit.backends.items()},
                "encodings": [
                    {"orientation": o, "codec": c, **asdict(e)}
                    for (o, c), e in sorted(self.encodings.items())
                ],
                "extra_requests": [
                    {"pattern": p, "orientation": o, "sharded": s, "requests": n}
                    for (p, o, s), n in sorted(self.extra_requests.items())
                ],
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> CostModel:
        try:
            raw = json.loads(text)
            if "note" in raw:  # the study run could not fit one
                raise ChunkatlasError(f"{where} holds no cost model: {raw['note']}")
            backend_fields = {f.name for f in fields(BackendFit)}
            fit = CostFit(
                {
                    b: BackendFit(**{k: v for k, v in f.items() if k in backend_fields})
                    for b, f in raw["backends"].items()
                }
            )
            found = {
                (e["orientation"], e["codec"]): Encoding(
                    e["bytes_per_value"],
                    e["bytes_per_pointer"],
                    e["decode_seconds_per_byte"],
                    e.get("decode_seconds_per_chunk", 0.0),
                )
                for e in raw["encodings"]
            }
            extra = {
                (e["pattern"], e["orientation"], bool(e["sharded"])): int(e["requests"])
                for e in raw["extra_requests"]
            }
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ChunkatlasError(f"{where} is not a chunkatlas cost model ({err!r})") from None
        return cls(fit, found, extra, raw.get("origin", where), raw.get("provenance", {}))


def build_cost_model(
    remote: pd.DataFrame, summary: pd.DataFrame, fit: CostFit, origin: str
) -> CostModel:
    """The cost model of a study run: its fit, its stores' encodings and reader, and what it
    was fitted on (:func:`study_provenance`)."""
    found = encodings(remote, summary)
    return CostModel(
        fit, found, calibrate(remote, summary, found), origin, study_provenance(remote, summary)
    )


def study_provenance(remote: pd.DataFrame, summary: pd.DataFrame) -> dict[str, str]:
    """What a study run's model was fitted on, as the reference model says it: each tissue's
    size, the reads, the emulated network, the reader, the date and the machine."""
    import datetime

    from chunkatlas.model._reader import READERS

    tissues = summary.drop_duplicates("tissue") if "tissue" in summary else summary.iloc[:0]
    shapes = "; ".join(
        f"{t.tissue}: {int(t.n_obs):,} cells x {int(t.n_vars):,} genes, "
        f"{float(t.nnz) / max(int(t.n_obs), 1):,.1f} values per cell"
        for t in tissues.itertuples()
        if pd.notna(t.nnz)
    )
    stores = remote.drop_duplicates(["tissue", "orientation", "chunk", "shard", "codec"])
    backends = " and ".join(sorted(remote["backend"].astype(str).unique()))
    repeats = (
        ", ".join(str(r) for r in sorted(remote["repeats"].unique()))
        if "repeats" in remote
        else "?"
    )
    network = "; ".join(
        f"{latency:g} ms to the first byte, "
        + ("loopback speed" if pd.isna(bandwidth) else f"{bandwidth:g} Mbit/s per response")
        for latency, bandwidth in remote[["latency_ms", "bandwidth_mbps"]]
        .drop_duplicates()
        .itertuples(index=False)
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "tissue": shapes or "-",
        "reads": f"{len(stores)} stores x {remote['pattern'].nunique()} patterns x {backends}, "
        f"{repeats} cold read(s) each ({len(remote)} reads)",
        "network": f"{network} (emulated, loopback servers)" if network else "-",
        "reader": READERS["anndata"].description,
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
        "machine": f"{os.cpu_count()} cores, {memory:.0f} GiB",
    }


def load_cost_model(path: str | os.PathLike | None = None) -> CostModel:
    """``path`` (a study run's ``cost_model.json``), or the reference model shipped."""
    if path is None:
        text = files("chunkatlas.model").joinpath(REFERENCE_MODEL).read_text()
        return CostModel.from_json(text, "the reference cost model")
    where = Path(path)
    if not where.is_file():
        raise ChunkatlasError(
            f"cost model not found: {where} (a study run writes results/RUN/cost_model.json)"
        )
    return CostModel.from_json(where.read_text(), str(where))
