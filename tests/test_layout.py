"""The shape of the package, held by a test so it cannot drift: imports run one way (sources ->
store -> analysis -> outputs, the timing engine pure), nothing imports Airflow, no private name
is used outside its module, and modules and functions stay small enough to read."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"
SHARED = {"config", "errors", "timestamps", "urls"}
# What each part may import from pipeline (besides itself). The service layer (the top-level
# modules that are not shared) may import anything.
MAY_IMPORT = {
    "shared": SHARED,
    "timing": set(),
    "store": SHARED,
    "sources": SHARED | {"store"},
    "analysis": SHARED | {"store", "timing", "sources.csvfile", "sources.csv_scan"},  # the CSV readers
    "outputs": SHARED | {"store", "timing", "analysis"},
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _part(path: Path) -> str | None:
    rel = path.relative_to(PACKAGE)
    if len(rel.parts) > 1:
        return rel.parts[0]
    return "shared" if rel.stem in SHARED else None


def _imports(path: Path):
    """(module below pipeline, imported names) for every pipeline import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    here = path.relative_to(PACKAGE).with_suffix("").parts
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(here[:-node.level])
                module = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == "pipeline" or node.module.startswith("pipeline.")):
                module = node.module.removeprefix("pipeline").lstrip(".")
            else:
                continue
            for alias in node.names:
                yield module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pipeline."):
                    yield alias.name.removeprefix("pipeline."), ""


def _target(module: str, name: str) -> str:
    """The pipeline module an import reaches: `from pipeline.store import items` reaches store.items."""
    candidate = f"{module}.{name}" if module else name
    path = PACKAGE.joinpath(*candidate.split("."))
    return candidate if path.with_suffix(".py").exists() or path.is_dir() else module


def _allowed(target: str, allowed: set[str], own: str) -> bool:
    top = target.split(".")[0]
    if top == own or (own == "shared" and target in SHARED):
        return True
    return any(target == a or target.startswith(a + ".") or top == a for a in allowed)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way_and_never_reach_airflow(path):
    text = path.read_text()
    tree = ast.parse(text)
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        assert not any(n == "airflow" or n.startswith("airflow.") for n in names), f"{path} imports Airflow"
    part = _part(path)
    if part is None:  # the service layer
        return
    for module, name in _imports(path):
        target = _target(module, name)
        assert _allowed(target, MAY_IMPORT[part], part), f"{path.relative_to(PACKAGE)} ({part}) imports {target}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_name_is_used_outside_its_module(path):
    for module, name in _imports(path):
        assert not (name.startswith("_") and not name.startswith("__")), (
            f"{path.relative_to(PACKAGE)} imports {name} from {module}")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_are_small(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.name}:{node.lineno} {node.name}: {length} lines"


def test_every_part_says_its_job_and_what_it_may_import():
    for part in ("sources", "store", "timing", "analysis", "outputs"):
        doc = ast.get_docstring(ast.parse((PACKAGE / part / "__init__.py").read_text()))
        assert doc and ("import" in doc or part == "timing"), part


def test_the_checker_sees_a_back_edge():
    """The rule above can fail: a store module importing the analysis is caught."""
    assert not _allowed("analysis.results", MAY_IMPORT["store"], "store")
    assert not _allowed("outputs.digest", MAY_IMPORT["sources"], "sources")
    assert not _allowed("sources.ingest", MAY_IMPORT["analysis"], "analysis")
    assert _allowed("sources.csvfile", MAY_IMPORT["analysis"], "analysis")


def test_commands_that_compute_no_statistics_do_not_import_scipy():
    """scipy.stats costs most of a second to import; `media-timing sql`, `--help` and the other
    commands that compute nothing must not pay it (the null registry imports it lazily)."""
    import subprocess
    import sys

    code = ("import sys, pipeline.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('scipy', 'matplotlib', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout
