"""The layer rules of docs/architecture.md, checked on every module's imports (AST scan,
function-level imports included), and the import graph has no circle."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "magimac"

# module prefix -> layer rank (longest prefix wins); keep in step with docs/architecture.md
LAYERS: dict[str, int] = {
    "magimac": 0, "magimac.core": 0,
    "magimac.quantize": 1,
    "magimac.models": 2,
    "magimac.text": 3, "magimac.demo": 3,
    "magimac.engine": 4, "magimac.online": 4,
    "magimac.tools": 4.5,
    "magimac.session": 5,
    "magimac.bench": 6,
    "magimac.cli": 7, "magimac.tui": 7, "magimac.server": 7, "magimac.__main__": 7,
    "magimac.testing": 8, "magimac.demo.train": 8,
}
TOOLS = 8
MLX = ("mlx", "mlx_lm", "mlx_vlm")
MLX_ALLOWED = ("magimac.engine", "magimac.quantize", "magimac.testing", "magimac.demo.train")
TEXTUAL_ALLOWED = ("magimac.tui",)
ONLINE_SDK = ("mistralai", "httpx2", "keyring")
ONLINE_SDK_ALLOWED = ("magimac.online", "magimac.testing")
FRONT_ENDS = ("magimac.cli", "magimac.tui", "magimac.server")
ENGINE_FOR_CLI = ("magimac.engine.disk_index", "magimac.engine.device")  # `magimac cache`, `magimac doctor`
MAX_LINES = 400


def layer_of(module: str) -> tuple[str, int]:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return best, LAYERS[best]


def modules() -> dict[str, Path]:
    """Every module of the package, the `quantize` library (a link inside it) included."""
    found = {}
    for base, prefix in ((PKG, "magimac"), (ROOT / "quantize", "magimac.quantize")):
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            if rel.parts and rel.parts[0] == "quantize" and base == PKG:
                continue  # the link to quantize/, scanned under its own name
            parts = [prefix, *rel.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports(module: str, path: Path) -> set[str]:
    """Absolute names of every module `module` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)
    return out


def project_edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges = {}
    for mod, path in mods.items():
        targets = set()
        for name in imports(mod, path):
            if name.startswith("quantize.") or name == "quantize":
                name = "magimac." + name  # the library's old top-level name counts as itself
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name and name != mod:
                targets.add(name)
        edges[mod] = targets
    return edges


MODS = modules()
EDGES = project_edges(MODS)


def test_no_module_imports_a_higher_layer():
    wrong = []
    for mod, targets in EDGES.items():
        src, rank = layer_of(mod)
        for t in targets:
            dst, trank = layer_of(t)
            if trank > rank and rank != TOOLS:
                wrong.append(f"{mod} ({src}) imports {t} ({dst})")
            if src == "magimac.quantize" and dst not in ("magimac.quantize", "magimac.core"):
                wrong.append(f"{mod}: the quantize library imports the app ({t})")
    assert not wrong, "\n".join(sorted(wrong))


NAME_TAKERS = ("import_module", "__import__", "find_spec", "patch", "setattr", "delattr")
"""Calls whose first argument may be a dotted module name (importlib, unittest.mock, monkeypatch)."""


def _called(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def top_level_quantize_uses(path: Path) -> list[str]:
    """Where ``path`` names the library by its top-level name ``quantize`` (an import, or a
    dotted name given to import_module, patch or monkeypatch.setattr) instead of `magimac.quantize`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else \
            [node.args[0].value] if (isinstance(node, ast.Call) and _called(node) in NAME_TAKERS and node.args
                                     and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)) else []
        found += [f"{path}:{node.lineno} {n}" for n in names if n == "quantize" or n.startswith("quantize.")]
    return found


def test_no_file_imports_the_library_by_its_top_level_name():
    """`import quantize` and `import magimac.quantize` would be two module objects (the link
    magimac/quantize -> ../quantize): the package, the tests, bench/ and scripts/ use the second."""
    files = [*MODS.values(), *(p for d in ("tests", "bench", "scripts") for p in sorted((ROOT / d).rglob("*.py")))]
    wrong = [u for p in files for u in top_level_quantize_uses(p)]
    assert not wrong, "\n".join(wrong)


def test_the_quantize_scan_sees_each_way_of_naming_it(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import quantize.convert\nfrom quantize import sizes\nfrom .quantize import ok\n"
                 "monkeypatch.setattr('quantize.sizes.LIMIT', 1)\nimport magimac.quantize\n")
    got = [u.split(" ", 1)[1] for u in top_level_quantize_uses(f)]
    assert got == ["quantize.convert", "quantize", "quantize.sizes.LIMIT"]


def test_importing_the_top_level_name_is_refused():
    r = subprocess.run([sys.executable, "-c", "import quantize"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 1 and "import the quantize library as magimac.quantize" in r.stderr


def _declared() -> tuple[set[str], set[str]]:
    """Normalized names of pyproject.toml's dependencies, and of its optional ones."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = [r for reqs in project["optional-dependencies"].values() for r in reqs]
    return ({_dist(Requirement(r).name) for r in project["dependencies"]},
            {_dist(Requirement(r).name) for r in optional})


def _dist(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_third_party_import_is_a_declared_dependency():
    """The app imports only what pyproject.toml's dependencies install (a package that merely
    comes along with another may go away with it); the tools may use the optional ones too."""
    required, optional = _declared()
    provides = packages_distributions()
    wrong = set()
    for mod, path in MODS.items():
        for top in {n.split(".")[0] for n in imports(mod, path)} - {"", "magimac", "__future__"}:
            dists = {_dist(d) for d in provides.get(top, [top])}
            allowed = required | (optional if layer_of(mod)[1] == TOOLS else set())
            if top not in sys.stdlib_module_names and not dists & allowed:
                wrong.add(f"{mod} imports {top} (from {', '.join(sorted(dists))}): not in pyproject.toml")
    assert not wrong, "\n".join(sorted(wrong))


def test_mlx_textual_and_the_api_sdk_only_where_the_table_says():
    wrong = []
    for mod, path in MODS.items():
        for name in imports(mod, path):
            top = name.split(".")[0]
            if top in MLX and not mod.startswith(MLX_ALLOWED):
                wrong.append(f"{mod} imports {name}")
            if top == "textual" and not mod.startswith(TEXTUAL_ALLOWED):
                wrong.append(f"{mod} imports {name}")
            if top in ONLINE_SDK and not mod.startswith(ONLINE_SDK_ALLOWED):
                wrong.append(f"{mod} imports {name} (the API's SDK and the keychain: magimac.online and the tools only)")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_app_and_the_server_import_nothing_of_the_engine():
    """The app and `magimac serve` reach a model only through magimac.session; the CLI imports
    only the engine modules of the commands about the engine itself (`cache`, `doctor`)."""
    wrong = [f"{m} imports {t}" for m, targets in EDGES.items() if m.startswith(FRONT_ENDS)
             for t in targets if t.startswith("magimac.engine")
             and not (m.startswith("magimac.cli") and t in ENGINE_FOR_CLI)]
    assert not wrong, "\n".join(sorted(wrong))


def engine_uses(path: Path) -> list[str]:
    """Lines of ``path`` that reach an engine object: an attribute named ``engine`` (as in
    ``session.engine.encode``) or ``getattr(x, "engine")``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr == "engine":
            found.append(f"{path.name}:{node.lineno}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and node.args[1].value == "engine"):
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_front_end_calls_an_engine():
    """Front-ends talk to the `ChatSession` (encode, count_tokens, status, turns), never to the
    engine behind it (`magimac.core.backend.Backend`)."""
    wrong = [u for m, p in MODS.items() if m.startswith(FRONT_ENDS) for u in engine_uses(p)]
    assert not wrong, "front-ends reaching an engine: " + ", ".join(wrong)


def test_the_engine_scan_sees_a_front_end_calling_an_engine(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def show(run):\n    return run.session.engine.encode([])\n")
    assert engine_uses(f) == ["x.py:2"]


def test_the_import_graph_has_no_circle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(EDGES[m]):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (cycle := visit(t)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(EDGES):
        if m not in state and (cycle := visit(m)):
            pytest.fail("import circle: " + " -> ".join(cycle))


def test_no_module_is_too_long():
    long = {m: n for m, p in MODS.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_scan_sees_a_forbidden_import(tmp_path):
    """The scan itself: a function-level import of the app from the quantize library counts."""
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from magimac.models import registry\n")
    assert "magimac.models.registry" in imports("magimac.quantize.x", f)


def test_the_app_and_its_missing_model_screen_leave_mlx_unimported():
    code = (
        "import sys, asyncio\n"
        "import magimac.tui.app as a\n"
        "from magimac.tui.screens import MissingModel\n"
        "async def main():\n"
        "    app = a.MagimacApp(model='magistral-small-2509')\n"  # known, not installed: the screen
        "    async with app.run_test() as pilot:\n"
        "        await pilot.pause()\n"
        "        for _ in range(600):\n"
        "            if isinstance(app.screen, MissingModel) and app.screen.recommendations is not None: break\n"
        "            await pilot.pause(0.1)\n"
        "        assert isinstance(app.screen, MissingModel), app.screen\n"
        "        assert app.screen.recommendations is not None, 'magimac plan never answered'\n"
        "asyncio.run(main())\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('mlx', 'mlx_lm', 'mlx_vlm'))\n"
        "print('MLX', bad)\n"
        "import magimac.cli.chat, magimac.cli.models\n"  # and no online model chosen: no API SDK
        "magimac.cli.models.rows()\n"
        "print('SDK', sorted(m for m in sys.modules if m.split('.')[0] in ('mistralai', 'httpx2', 'keyring')))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "MLX []" in r.stdout and "SDK []" in r.stdout, r.stdout
