"""The dependency rules of DESIGN.md, each checked by a test.

Two views: what a fresh interpreter really imports (torch and the model runtime stay out of
the gateway, the workflows and the CLI's start-up), and a static read of every `import` in
src/daguerre, lazy ones included, so that a rule also holds on paths no test happens to run.
Each static rule is also run on a small synthetic tree with one forbidden import added, to
show in the test itself that the checker would catch it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

from tests.support.stack import REPO

SRC = REPO / "src"

# Shared leaf modules at the top of the package: anyone may import them, and they import
# only each other.
FOUNDATION = frozenset(
    {
        "config",
        "domain",
        "priority",
        "access",
        "redact",
        "webhook_guard",
        "procs",
        "image_bytes",
        "blob_layout",
        "webhook_event",
    }
)
# Each part's allowed imports of our other parts (DESIGN.md, "Dependency rules"):
# models/ imports nothing from the rest; web/ is assets only; the store and the engine stand
# on the foundation alone; the progress feeds may also read the store.
ALLOWED = {
    "models": frozenset(),
    "web": frozenset(),
    "store": FOUNDATION,
    "engine": FOUNDATION,
    "progress": FOUNDATION | {"store"},
    **{leaf: FOUNDATION for leaf in FOUNDATION},
}
# The gateway never reaches the workers or models (nor the processes that launch it); a
# worker never serves HTTP, so it never imports the gateway or the page.
ENTRY_POINTS = frozenset({"cli", "commands", "launcher", "__main__"})
FORBIDDEN = {
    "gateway": frozenset({"workers", "models"}) | ENTRY_POINTS,
    "workers": frozenset({"gateway", "web"}) | ENTRY_POINTS,
}
# Third-party packages that would break a rule: no model runtime outside workers/models (and
# the CLI commands that drive them), no HTTP server in a worker.
MODEL_RUNTIME = ("torch", "diffusers", "transformers", "safetensors")
FORBIDDEN_THIRD_PARTY = {
    "gateway": MODEL_RUNTIME,
    "engine": MODEL_RUNTIME,
    "store": MODEL_RUNTIME,
    "progress": MODEL_RUNTIME,
    "web": MODEL_RUNTIME,
    "workers": ("fastapi", "starlette", "uvicorn"),
}
# A workflow replays from history, so it must not read the clock, draw randomness or do I/O:
# none of these modules, and none of these calls (temporalio's workflow.now/random instead).
NONDETERMINISTIC_MODULES = (
    "time", "random", "secrets", "uuid", "os", "io", "socket", "subprocess", "threading",
    "shutil", "tempfile", "pathlib", "anyio", "httpx", "requests", "sqlalchemy", "redis",
    "boto3", "PIL", "numpy", "torch",
)  # fmt: skip
NONDETERMINISTIC_CALLS = ("now", "utcnow", "today", "open", "getenv")
# Of ours, only pure names and records (settings read the environment; the rest do I/O).
WORKFLOW_OUR_IMPORTS = frozenset({"domain", "priority"})

# Known breaches, each to be fixed under issue 15 (these lists must only shrink):
KNOWN_BREACHES: set[tuple[str, str]] = set()
KNOWN_CYCLES: set[frozenset[str]] = set()


# --- a static import graph -------------------------------------------------------------


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(
    module: str, is_package: bool, tree: ast.AST, modules: Collection[str] = ()
) -> Iterator[str]:
    """Every module name an `import` in `tree` names, relative ones resolved. `from a import
    b` names `a.b` when that is one of `modules`, else `a` (b is a name defined in a), so a
    package's `__init__` that re-exports its submodules makes no false cycle with them."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield submodule if submodule in modules else base


def import_graph(root: Path, top: str = "daguerre") -> dict[str, set[str]]:
    """Our module -> the set of our modules it imports (anywhere in its body)."""
    files = {module_name(root, p): p for p in sorted((root / top).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = imported_names(module, path.name == "__init__.py", tree, files)
        graph[module] = {name for name in names if name in files and name != module}
    return graph


def third_party_imports(root: Path, top: str = "daguerre") -> dict[str, set[str]]:
    """Our module -> the top-level names of the other packages it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((root / top).rglob("*.py")):
        module = module_name(root, path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = imported_names(module, path.name == "__init__.py", tree)
        found[module] = {n.split(".")[0] for n in names if n and not n.startswith(top)}
    return found


def part(module: str) -> str:
    """`daguerre.gateway.api.routes.jobs` -> `gateway`; `daguerre.config` -> `config`."""
    return module.split(".")[1] if "." in module else ""


def layer_breaches(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importer, imported) pairs that break ALLOWED or FORBIDDEN."""
    breaches = set()
    for module, targets in graph.items():
        mine = part(module)
        for target in targets:
            theirs = part(target)
            if theirs == mine or not theirs:
                continue
            if mine in ALLOWED and theirs not in ALLOWED[mine]:
                breaches.add((module, target))
            if theirs in FORBIDDEN.get(mine, ()):
                breaches.add((module, target))
    return breaches


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def workflow_breaches(root: Path, top: str = "daguerre") -> set[tuple[str, str]]:
    """(workflow module, offending import or call) for every module with a @workflow.defn."""
    breaches = set()
    modules = {module_name(root, p) for p in (root / top).rglob("*.py")}
    for path in sorted((root / top).rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "workflow.defn" not in source:
            continue
        module = module_name(root, path)
        tree = ast.parse(source)
        for name in imported_names(module, path.name == "__init__.py", tree, modules):
            ours = name.startswith(f"{top}.")
            if name.split(".")[0] in NONDETERMINISTIC_MODULES or (
                ours and not _workflow_may_import(name)
            ):
                breaches.add((module, name))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                called = node.func
                name = called.attr if isinstance(called, ast.Attribute) else None
                name = called.id if isinstance(called, ast.Name) else name
                owner = called.value if isinstance(called, ast.Attribute) else None
                is_temporal = isinstance(owner, ast.Name) and owner.id == "workflow"
                if name in NONDETERMINISTIC_CALLS and not is_temporal:
                    breaches.add((module, f"{name}()"))
    return breaches


def _workflow_may_import(name: str) -> bool:
    """Only the activity contracts and the foundation's pure modules (names, not I/O)."""
    return name.split(".")[1] in WORKFLOW_OUR_IMPORTS or name.startswith(
        "daguerre.engine.contracts"
    )


# --- the rules, on the real tree --------------------------------------------------------


def test_each_part_imports_only_what_design_allows() -> None:
    breaches = layer_breaches(import_graph(SRC))
    assert breaches - KNOWN_BREACHES == set()
    assert breaches >= KNOWN_BREACHES, "a known breach is fixed: drop it from KNOWN_BREACHES"


def test_no_import_cycles_between_our_modules() -> None:
    found = cycles(import_graph(SRC))
    assert found - KNOWN_CYCLES == set()
    assert found >= KNOWN_CYCLES, "a known cycle is gone: drop it from KNOWN_CYCLES"


def test_no_model_runtime_outside_workers_and_no_http_server_in_workers() -> None:
    breaches = {
        (module, name)
        for module, names in third_party_imports(SRC).items()
        for name in names
        if name in FORBIDDEN_THIRD_PARTY.get(part(module), ())
    }
    assert breaches == set()


def test_workflows_are_deterministic() -> None:
    assert workflow_breaches(SRC) == set()


def imported_by(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout))


@pytest.mark.parametrize(
    "module", ["daguerre.gateway.app", "daguerre.engine.workflows", "daguerre.cli"]
)
def test_no_torch_models_or_workers(module: str) -> None:
    loaded = imported_by(module)
    assert "torch" not in loaded
    assert not any(m.startswith("daguerre.models") for m in loaded)
    assert not any(m.startswith("daguerre.workers") for m in loaded)


# --- the checker catches an added forbidden import ---------------------------------------


def synthetic_tree(root: Path, files: dict[str, str]) -> Path:
    """A tiny `daguerre` package under `root` holding `files` (path -> source)."""
    for name, source in files.items():
        path = root / "daguerre" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in [path.parent, *path.parent.parents]:
            if folder == root:
                break
            (folder / "__init__.py").touch()
        path.write_text(source, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("importer", "source", "imported"),
    [
        ("models/base.py", "from daguerre.store import db\n", "daguerre.store.db"),
        ("models/base.py", "from ..config import Settings\n", "daguerre.config"),
        ("gateway/app.py", "def f():\n    import daguerre.workers.run\n", "daguerre.workers.run"),
        ("gateway/app.py", "from daguerre.models import base\n", "daguerre.models.base"),
        ("engine/client.py", "from daguerre.gateway import app\n", "daguerre.gateway.app"),
        ("store/db.py", "from daguerre.engine import client\n", "daguerre.engine.client"),
        ("store/db.py", "from daguerre.progress import feed\n", "daguerre.progress.feed"),
        ("progress/feed.py", "from daguerre.gateway import app\n", "daguerre.gateway.app"),
        ("progress/feed.py", "from daguerre.workers import run\n", "daguerre.workers.run"),
        ("web/__init__.py", "from daguerre.gateway.app import x\n", "daguerre.gateway.app"),
        ("workers/run.py", "from daguerre.gateway import app\n", "daguerre.gateway.app"),
        ("config.py", "from daguerre.store import db\n", "daguerre.store.db"),
    ],
)
def test_the_checker_reports_an_added_forbidden_import(
    tmp_path: Path, importer: str, source: str, imported: str
) -> None:
    clean = {
        "config.py": "",
        "models/base.py": "",
        "gateway/app.py": "from daguerre.engine import client\nfrom daguerre import config\n",
        "engine/client.py": "from daguerre import config\n",
        "store/db.py": "from daguerre.config import Settings\n",
        "progress/feed.py": "from daguerre.store import db\nfrom daguerre import domain\n",
        "web/__init__.py": "",
        "workers/run.py": "from daguerre.models import base\nfrom daguerre.store import db\n",
    }
    assert layer_breaches(import_graph(synthetic_tree(tmp_path / "clean", clean))) == set()
    broken = synthetic_tree(tmp_path / "broken", {**clean, importer: source})
    module = module_name(tmp_path / "broken", tmp_path / "broken" / "daguerre" / importer)
    assert (module, imported) in layer_breaches(import_graph(broken))


def test_the_checker_reports_an_added_cycle(tmp_path: Path) -> None:
    files = {
        "store/__init__.py": "from daguerre.store.a import x\n",  # a re-export: no cycle
        "store/a.py": "from daguerre.store import b\n",
        "store/b.py": "def f():\n    from daguerre.store.c import x\n",
        "store/c.py": "",
    }
    assert cycles(import_graph(synthetic_tree(tmp_path / "clean", files))) == set()
    files["store/c.py"] = "from . import a\n"
    found = cycles(import_graph(synthetic_tree(tmp_path / "cyclic", files)))
    assert found == {frozenset({"daguerre.store.a", "daguerre.store.b", "daguerre.store.c"})}


@pytest.mark.parametrize(
    ("source", "breach"),
    [
        ("import time\n", "time"),
        ("from random import random\n", "random"),
        ("from daguerre.store import db\n", "daguerre.store.db"),
        ("from daguerre.config import Settings\n", "daguerre.config"),
        ("import datetime\nx = datetime.datetime.now()\n", "now()"),
        ("x = open('f')\n", "open()"),
    ],
)
def test_the_checker_reports_nondeterminism_in_a_workflow(
    tmp_path: Path, source: str, breach: str
) -> None:
    header = "from temporalio import workflow\nfrom daguerre.engine.contracts import X\n"
    body = "@workflow.defn\nclass W:\n    def run(self):\n        return workflow.now()\n"
    files = {"engine/contracts.py": "", "store/db.py": "", "config.py": ""}
    clean = synthetic_tree(tmp_path / "clean", {**files, "engine/flows.py": header + body})
    assert workflow_breaches(clean) == set()
    broken = synthetic_tree(tmp_path / "bad", {**files, "engine/flows.py": header + source + body})
    assert ("daguerre.engine.flows", breach) in workflow_breaches(broken)
