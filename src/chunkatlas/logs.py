"""Logging and error reporting shared by the CLI and the Snakemake scripts.

Light to import (the store, and with it zarr, loads only when a function needs it): a script
calls :func:`one_line_interrupts` before its other imports, which is when a Ctrl-C most often
lands."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
