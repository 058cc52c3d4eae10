"""Which cost model ``chunkatlas advise`` uses: the one it is given, a study run's in the
directory it starts in, or the reference model shipped with chunkatlas.

Light on purpose (the command line imports it to word its help): the model is loaded on use.
"""

from __future__ import annotations

from pathlib import Path

from chunkatlas.errors import ChunkatlasError

#: Where a run started in a directory writes its cost model (``results/RUN/``).
RUN_MODELS = "results/*/cost_model.json"
#: What the shipped reference model was fitted on (its file's "origin" says the same).
REFERENCE_ORIGIN = "the million-cell study (1,000,000 cells x 20,000 genes, HTTP and S3)"


def choose_cost_model(path: str | None, backend: str, directory: Path, run: str | None):
    """The cost model ``advise`` uses, and one line saying which and why.

    ``--model`` (``path``) if given; otherwise a study run's ``results/RUN/cost_model.json`` in
    ``directory`` (the default config's ``run`` first, then the most recently written) that has
    a fit for ``backend``; otherwise the reference model shipped with chunkatlas.
    """
    from chunkatlas.model._cost_model import load_cost_model

    if path is not None:
        return load_cost_model(path), f"cost model: {path} (--model)"
    found = sorted(
        directory.glob(RUN_MODELS),
        key=lambda p: (p.parent.name != run, -p.stat().st_mtime, p.parent.name),
    )
    passed = []
    for candidate in found:
        where = candidate.relative_to(directory).as_posix()
        try:
            model = load_cost_model(candidate)
        except ChunkatlasError:
            passed.append(f"{where} holds no usable model")
            continue
        if backend not in model.fit.backends:
            passed.append(f"{where} has no {backend} fit")
            continue
        why = "the default config's run" if candidate.parent.name == run else "the newest run here"
        others = [p.relative_to(directory).as_posix() for p in found if p != candidate]
        also = f"; also here: {', '.join(others)}" if others else ""
        return model, (
            f"cost model: {where}, of the run {candidate.parent.name!r} in this directory "
            f"({why}{also}; --model FILE to choose)"
        )
    why = "; ".join(passed) or f"no {RUN_MODELS} in this directory"
    return load_cost_model(), (
        f"cost model: the reference model shipped with chunkatlas ({why}; --model FILE for a run's)"
    )
