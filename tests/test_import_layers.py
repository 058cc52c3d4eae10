"""The package's import graph: the store is the closed bottom layer, every package imports only
those below it, no circle of imports, and other code reaches a package through its public names;
and the domain packages never read a config (only :mod:`chunkatlas.settings` does).

Every import counts: at module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "src"

#: Bottom to top. A module may import its own group and any group below it, never one above.
LAYERS = (
    ("chunkatlas._version", "chunkatlas._exports", "chunkatlas.errors", "chunkatlas._schema"),
    ("chunkatlas.store",),
    ("chunkatlas.config", "chunkatlas.logs"),
    ("chunkatlas.ingest",),
    ("chunkatlas.rewrite",),
    ("chunkatlas.analysis",),
    ("chunkatlas.study",),
    ("chunkatlas.model",),
    ("chunkatlas.report",),
    ("chunkatlas.settings",),  # the config parsed into the domain packages' types
    ("chunkatlas.steps",),  # one function per step: typed settings and paths in
    ("chunkatlas._parser",),  # the CLI's options from the schema
    ("chunkatlas.result", "chunkatlas.cli", "chunkatlas.workflow"),
    ("chunkatlas",),
)

#: The rooms that do the work: they take typed arguments and never read a config.
DOMAIN = (
    "chunkatlas.store",
    "chunkatlas.ingest",
    "chunkatlas.rewrite",
    "chunkatlas.analysis",
    "chunkatlas.study",
    "chunkatlas.model",
    "chunkatlas.report",
)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p, SOURCE): p for p in sorted((SOURCE / "chunkatlas").rglob("*.py"))}


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """The package modules ``path`` (module ``name``) imports: ``from a import b`` names the
    module ``a.b`` when that is one, else ``a``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else base)
    return {m for m in found if m == "chunkatlas" or m.startswith("chunkatlas.")}


def graph() -> dict[str, set[str]]:
    modules = package_modules()
    known = set(modules)
    return {name: imported(path, name, known) & known for name, path in modules.items()}


def layer_of(module: str) -> tuple[int, str]:
    best = None
    for rank, groups in enumerate(LAYERS):
        for group in groups:
            if module == group or module.startswith(group + "."):
                if best is None or len(group) > len(best[1]):
                    best = (rank, group)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def test_every_module_has_a_layer():
    for module in package_modules():
        layer_of(module)


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for module, targets in graph().items():
        rank, group = layer_of(module)
        for target in targets:
            target_rank, target_group = layer_of(target)
            if target_rank > rank or (target_rank == rank and target_group != group):
                upward.append(f"{module} ({group}) imports {target} ({target_group})")
    assert not upward, "\n".join(sorted(upward))


def test_the_store_imports_nothing_above_it():
    store = {m: t for m, t in graph().items() if layer_of(m)[1] == "chunkatlas.store"}
    assert store, "no store modules found"
    for module, targets in store.items():
        assert {layer_of(t)[0] for t in targets} <= {0, 1}, (module, targets)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_circle_of_imports():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def is_private(module: str) -> str | None:
    """The package whose private module ``module`` is, or None for a public module."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and i > 0:
            return ".".join(parts[:i])
    return None


def test_other_packages_scripts_and_benchmarks_use_public_names():
    known = set(package_modules())
    callers = {name: path for name, path in package_modules().items()}
    for folder in ("scripts", "benchmarks"):
        for path in sorted((REPO / folder).glob("*.py")):
            callers[f"{folder}.{path.stem}"] = path
    reaching_in = []
    for name, path in callers.items():
        for target in imported(path, name, known):
            owner = is_private(target)
            if owner and not (name == owner or name.startswith(owner + ".")):
                reaching_in.append(f"{name} imports {target}")
    assert not reaching_in, "\n".join(sorted(reaching_in))


#: Parameters named like a config that are not one (a TileDB context's settings).
NOT_A_CONFIG = {"tiledb_config"}


def reads_of_a_config(path: Path) -> list[str]:
    """Where the module at ``path`` takes a config: a parameter named ``config`` (or
    ``*_config``), one annotated as a config mapping, or a call of ``.from_config(``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            arguments = node.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
            for argument in every:
                name = argument.arg
                annotation = ast.unparse(argument.annotation) if argument.annotation else ""
                named = name == "config" or (name.endswith("_config") and name not in NOT_A_CONFIG)
                if named or "config" in annotation.lower():
                    where = getattr(node, "name", "lambda")
                    found.append(f"{where}({name}: {annotation or '?'}), line {node.lineno}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "from_config":
                found.append(f"{ast.unparse(node.func)}(...), line {node.lineno}")
    return found


def test_no_domain_package_reads_a_config():
    modules = package_modules()
    domain = [m for m in modules if any(m == d or m.startswith(d + ".") for d in DOMAIN)]
    assert len(domain) > 20, "the domain packages' modules not found"
    reading = [
        f"{module}: {where}" for module in domain for where in reads_of_a_config(modules[module])
    ]
    assert not reading, "\n".join(reading)


def test_the_config_reader_finds_each_way_of_reading_one(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "def a(config): ...\n"
        "def b(*, run_config: Mapping): ...\n"
        "def c(x: WorkflowConfig): ...\n"
        "def d(tiledb_config: Mapping, y: int = 1): ...\n"
        "s = Settings.from_config(c)\n"
    )
    assert [w.split(",")[0] for w in reads_of_a_config(module)] == [
        "a(config: ?)",
        "b(run_config: Mapping)",
        "c(x: WorkflowConfig)",
        "Settings.from_config(...)",
    ]


def test_steps_and_settings_sit_between_the_domain_and_the_adapters():
    assert layer_of("chunkatlas.settings")[0] > layer_of("chunkatlas.report")[0]
    assert layer_of("chunkatlas.steps")[0] > layer_of("chunkatlas.settings")[0]
    assert layer_of("chunkatlas.cli")[0] > layer_of("chunkatlas.steps")[0]
    for module, targets in graph().items():
        if any(module.startswith(d) for d in DOMAIN):
            assert not {
                t for t in targets if t.startswith(("chunkatlas.settings", "chunkatlas.steps"))
            }


def test_only_the_adapters_know_the_workflow():
    """The Snakemake adapter (chunkatlas.workflow) is imported by no package below it: the
    domain, the settings and the steps run without Snakemake, and the store (bytes and
    addresses) knows nothing of how a run keeps its stores."""
    adapters = ("chunkatlas.workflow", "chunkatlas.cli", "chunkatlas.result")
    for module, targets in graph().items():
        if module == "chunkatlas" or module.startswith(adapters):
            continue
        assert not {t for t in targets if t.startswith("chunkatlas.workflow")}, module
