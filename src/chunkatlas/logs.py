"""Logging and error reporting shared by the CLI and the Snakemake scripts.

Light to import (the store, and with it zarr, loads only when a function needs it): a script
calls :func:`one_line_interrupts` before its other imports, which is when a Ctrl-C most often
lands."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from chunkatlas.errors import ChunkatlasError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
log = logging.getLogger("chunkatlas")


@contextmanager
def timed(step: str, seconds: dict[str, float], detail: str = "") -> Iterator[None]:
    """Log the start and duration of one step and record it in ``seconds`` under ``step``.

    ``step`` is a short identifier (it becomes a key of ``uns['chunkatlas']['seconds']``, where
    anndata refuses "/"); the log line adds the ``detail``.
    """
    label = f"{step} ({detail})" if detail else step
    log.info("%s ...", label)
    start = time.perf_counter()
    yield
    seconds[step] = round(time.perf_counter() - start, 3)
    log.info("%s done in %.1f s", label, seconds[step])


class RedactingFormatter(logging.Formatter):
    """Masks credentials in URLs of every log record, whoever logs it."""

    def format(self, record: logging.LogRecord) -> str:
        from chunkatlas.store import redact

        return redact(super().format(record))


def configure_logging(stream: TextIO) -> None:
    """Send chunkatlas, dask and Python warnings to ``stream`` with timestamps."""
    logging.basicConfig(stream=stream, level=logging.INFO, format=FORMAT, force=True)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter(FORMAT))
    for noisy in ("distributed", "numba", "tiledbsoma", "fsspec", "asyncio", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)


def report_errors[T](action: Callable[[], T], *, console: TextIO | None = None) -> T:
    """Run ``action``; a ChunkatlasError becomes one line on stderr (and in the log) and exit 1."""
    from chunkatlas.store import redact

    try:
        return action()
    except ChunkatlasError as err:
        console = console or sys.__stderr__
        # Into the log as well, unless the log is the console (the CLI): one line there.
        if not any(getattr(h, "stream", None) is console for h in logging.getLogger().handlers):
            logging.getLogger("chunkatlas").error("%s", err)
        print(redact(f"chunkatlas: error: {err}"), file=console, flush=True)
        raise SystemExit(1) from None


def run_snakemake_step[T](snakemake, action: Callable[[], T]) -> T:
    """Run one workflow step with stdout/stderr and logging in the rule's log file.

    A rule that writes a store names it in a param ``writes`` (a
    :class:`~chunkatlas.store.WorkflowStore`) and declares its record as the output
    ``objects``: the previous store is set aside while the step writes its own, and when the
    step succeeds the record is written, the store put in the run's bucket, if it has one, and
    the previous store removed.  A step that fails (or is interrupted) puts the previous store
    back (:func:`replaced_on_success`): a failed job never deletes a good result.
    """
    log_file = open(snakemake.log[0], "a", buffering=1)  # noqa: SIM115 - lives as long as the job
    sys.stderr = log_file
    sys.stdout = log_file
    configure_logging(log_file)
    store = snakemake.params.writes.value if "writes" in snakemake.params.keys() else None
    if store is None:
        return report_errors(action)

    def step():
        from chunkatlas.store import write_objects_record

        with replaced_on_success(store.path):
            outcome = action()
            write_objects_record(store.path, snakemake.output.objects)
            store.publish()
        return outcome

    return report_errors(step)


#: The hidden sibling a step keeps the previous store in while it writes the new one (not
#: ``.NAME.tmp-*``: the writers' own temporaries, which they remove as a killed writer's).
ASIDE = ".{name}.previous-{pid}"


@contextmanager
def replaced_on_success(path: str | os.PathLike) -> Iterator[None]:
    """Keep the store at ``path`` (a previous run's: whatever is there is complete, as stores
    appear only whole) until the block has written its replacement there.

    The store is renamed to a hidden sibling (:data:`ASIDE`, on the same file system) for the
    block, which then finds ``path`` free; it is removed once the block succeeds, and put back
    where the block fails or is interrupted (what the block left at ``path`` removed first).  A
    step killed outright leaves it aside: the next step at ``path`` puts it back before anything
    else, so it stays the result until one replaces it.
    """
    final = Path(path)
    pattern = ASIDE.format(name=final.name, pid="*")
    asides = sorted(final.parent.glob(pattern), key=lambda p: p.stat().st_mtime)
    if asides and not final.exists():  # a killed step's: the last good store
        os.rename(asides.pop(), final)
    for stale in asides:
        remove_path(stale)
    aside = None
    if final.exists():
        aside = final.with_name(ASIDE.format(name=final.name, pid=os.getpid()))
        os.rename(final, aside)
    try:
        yield
    except BaseException:
        if aside is not None:
            remove_path(final)
            os.rename(aside, final)
        raise
    if aside is not None:
        remove_path(aside)


def remove_path(path: Path) -> None:
    """Remove a store (a directory) or a file at ``path``, if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def one_line_interrupts() -> None:
    """Let a Ctrl-C (KeyboardInterrupt) that nothing catches end this process with one line
    naming its job (``chunkatlas: interrupted: rule rechunk (tissue=lung, ...)``), on the
    console and in the job's log once it has one, instead of a traceback.  The exit is still by
    SIGINT, so Snakemake removes the job's outputs and a rerun does it again."""
    previous = sys.excepthook

    def hook(kind, value, traceback) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            previous(kind, value, traceback)
            return
        line = f"chunkatlas: interrupted: {running_job()}"
        print(line, file=sys.__stderr__, flush=True)
        if sys.stderr is not sys.__stderr__:  # a job's log
            print(line, file=sys.stderr, flush=True)

    sys.excepthook = hook


def running_job() -> str:
    """The Snakemake job this process runs (its script's ``snakemake`` object), else the
    ``chunkatlas`` command."""
    job = getattr(sys.modules.get("__main__"), "snakemake", None)
    if job is None:
        return " ".join(["chunkatlas", *sys.argv[1:2]])
    wildcards = ", ".join(f"{name}={value}" for name, value in job.wildcards.items())
    return f"rule {job.rule}" + (f" ({wildcards})" if wildcards else "")
