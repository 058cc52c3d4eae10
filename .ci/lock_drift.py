"""Print each installed package whose version differs from requirements.lock (CI's record of
what the tests ran with against what the README's `pip install -e .` resolved)."""

import sys
from importlib.metadata import PackageNotFoundError, version

drift = []
for line in open(sys.argv[1]):
    name, sep, locked = line.split("#")[0].strip().partition("==")
    if not sep:
        continue
    try:
        installed = version(name)
    except PackageNotFoundError:
        continue  # an extra's package (tests, benchmarks), installed later or not at all
    if installed != locked:
        drift.append(f"{name} {installed} (lock: {locked})")
print("CI: versions beside requirements.lock:", "; ".join(drift) or "all as locked", flush=True)
