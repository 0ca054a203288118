"""The house rules of STYLE.md, checked on the code itself: imports run downward, no import circle anywhere (imports
inside functions count), the web server never imports torch, and the job tables are complete whatever is imported
first."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("compute", "components", "dashboard", "bench")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file (top level and inside functions)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # "from compute.jobs import adversarial" imports the submodule; "from compute.cache import memoize" the module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, name, modules) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from compute import cache\n    import compute.jobs.table\n")
    found = imports_of(module, "x.m", project_modules())
    assert {"compute.cache", "compute.jobs.table"} <= found


def test_no_import_cycle_in_the_project():
    assert cycles(graph()) == []


def test_imports_run_downward():
    edges = graph()
    for name, targets in edges.items():
        top = name.split(".")[0]
        if top == "compute":
            assert not {t for t in targets if t.split(".")[0] in ("components", "dashboard", "bench")}, name
        if top == "components":
            assert not {t for t in targets if t.split(".")[0] in ("compute", "dashboard", "bench")}, name
        if name.startswith("compute.") and not name.startswith(("compute.jobs", "compute.worker")):
            # The algorithms never reach the jobs floor: a notebook imports just what it uses.
            assert not {t for t in targets if t.startswith("compute.jobs")}, name
        if name.startswith("compute.jobs.") and name != "compute.jobs.table":
            assert "compute.jobs.table" not in targets, name  # families never import the table


FRESH_IMPORT = """
import sys
{imports}
torch = sorted(name for name in sys.modules if name == "torch" or name.startswith("torch."))
print(len(torch))
"""


def _torch_modules_after(imports: str) -> int:
    output = subprocess.run([sys.executable, "-c", FRESH_IMPORT.format(imports=imports)], cwd=ROOT, check=True,
                            capture_output=True, text=True)
    return int(output.stdout.strip().splitlines()[-1])


def test_specs_errors_and_the_worker_entry_point_import_without_torch():
    specs = [path.stem for path in (ROOT / "compute" / "specs").glob("*.py") if path.stem != "__init__"]
    imports = "\n".join([f"import compute.specs.{name}" for name in specs]
                        + ["import compute.errors, compute.progress, compute.paths, compute.uploads, compute.worker"])
    assert _torch_modules_after(imports) == 0


WEB_SERVER = """
import sys
from dashboard.app import create_app
from dashboard.config import AppConfig
from dashboard.views.context import Meta

class Service:  # what create_app needs of the compute service, without a compute process
    source = None
    def precompute(self, jobs): pass
    def touch(self, session): pass

meta = Meta(model="digits-cnn", data="digits", classes=[str(k) for k in range(10)], count=1797, test_count=360,
            image_shape=[1, 32, 32], layers=["conv1", "relu1", "logits"], layer_shapes={"conv1": [16, 32, 32],
            "relu1": [16, 32, 32], "logits": [10]}, conv_layers=["conv1"], default_layer="relu1", device="cpu",
            skipped=[])
app = create_app(AppConfig(precompute=False), Service(), meta)
client = app.server.test_client()
assert client.get("/").status_code == 200
assert client.get("/_dash-layout").status_code == 200
# A request body larger than an upload can be is refused before it is parsed.
huge = client.post("/_dash-update-component", data=b"x" * (20 * 1024**2), content_type="application/json")
assert huge.status_code == 413, huge.status_code
print(int(any(name == "torch" or name.startswith("torch.") for name in sys.modules)))
"""


def test_the_web_server_builds_and_serves_its_page_without_importing_torch(tmp_path):
    output = subprocess.run([sys.executable, "-c", WEB_SERVER], cwd=ROOT, check=True, capture_output=True, text=True,
                            env={**__import__("os").environ, "FEATURESCOPE_CACHE_DIR": str(tmp_path)})
    assert output.stdout.strip().splitlines()[-1] == "0"


TABLE_AFTER = """
import importlib, json
importlib.import_module({first!r})
from compute.jobs.table import JOBS
from compute.jobs.variants import VARIANTS
print(json.dumps([sorted(JOBS), sorted(VARIANTS)]))
"""


@pytest.mark.parametrize("first", ["compute.jobs.adversarial", "compute.jobs.uploads", "compute.jobs.explore",
                                   "compute.adversarial", "compute.worker"])
def test_the_job_table_is_complete_whatever_is_imported_first(first):
    import json

    from compute.specs.jobs import LANES

    output = subprocess.run([sys.executable, "-c", TABLE_AFTER.format(first=first)], cwd=ROOT, check=True,
                            capture_output=True, text=True)
    jobs, variants = json.loads(output.stdout.strip().splitlines()[-1])
    assert jobs == sorted(LANES)  # every job has a lane, every lane names a job
    assert variants == ["adversarial", "upload"]


def test_a_name_registered_twice_is_refused():
    from compute.jobs import table, variants

    class Family:
        __name__ = "duplicate"
        JOBS = {"details.panels": lambda workspace, progress: {}}

    with pytest.raises(ValueError, match="registered twice"):
        table._table(table.FAMILIES + (Family,))
    with pytest.raises(ValueError, match="registered twice"):
        variants._table(("upload", lambda *a: None), ("upload", lambda *a: None))
