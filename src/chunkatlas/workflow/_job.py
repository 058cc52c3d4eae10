"""Running a Snakemake job: its log, its one-line errors and interrupts, and the store it
writes, kept whole (set aside until the new one is complete, recorded and moved to the run's
bucket).  Light to import: a script calls :func:`one_line_interrupts` before its other imports,
which is when a Ctrl-C most often lands."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from chunkatlas.logs import configure_logging, report_errors


def run_job[T](snakemake, action: Callable[[], T]) -> T:
    """Run one workflow step with stdout/stderr and logging in the rule's log file.

    A rule that writes a store declares its completion record as the output ``objects`` (the
    store beside it, :func:`output_store`): the previous store is set aside while the step
    writes its own, and when the step succeeds the record is written, the store put in the
    run's bucket, if it has one, and the previous store removed.  A step that fails (or is
    interrupted) puts the previous store back (:func:`replaced_on_success`): a failed job never
    deletes a good result.
    """
    log_file = open(snakemake.log[0], "a", buffering=1)  # noqa: SIM115 - lives as long as the job
    sys.stderr = log_file
    sys.stdout = log_file
    configure_logging(log_file)
    if "objects" not in snakemake.output.keys():
        return report_errors(action)
    store = output_store(snakemake)

    def step():
        from chunkatlas.store import write_objects_record

        with replaced_on_success(store.path):
            outcome = action()
            write_objects_record(store.path, snakemake.output.objects)
            store.publish()
        return outcome

    return report_errors(step)


def job_bucket(snakemake):
    """The run's bucket (the rule's untracked param ``bucket``), or None: outputs on disk."""
    bucket = snakemake.params.get("bucket")
    return None if bucket is None else bucket.value


def output_store(snakemake):
    """The store the job writes: beside its declared completion record ``objects`` (a SOMA
    Experiment where the rule's param ``store_suffix`` says ".soma")."""
    from chunkatlas.workflow._stores import store_in

    suffix = snakemake.params.get("store_suffix", ".zarr")
    return store_in(snakemake.output.objects, job_bucket(snakemake), suffix)


def input_store(snakemake, name: str = "store", suffix: str = ".zarr"):
    """The store of the job's input ``name`` (its completion record), or of each record when
    the input is a list."""
    from chunkatlas.workflow._stores import store_in

    records = snakemake.input[name]
    bucket = job_bucket(snakemake)
    if isinstance(records, str):
        return store_in(records, bucket, suffix)
    return [store_in(record, bucket, suffix) for record in records]


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
