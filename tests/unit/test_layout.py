"""The direction rules of the three parts (docs/architecture.md, "The three parts").

- ``signalr_protocol`` (the core) imports neither ``app`` nor ``emulator``, no web framework
  and no I/O library;
- ``emulator`` imports the core and never ``app``;
- ``app`` imports the core and never ``emulator``, except ``app/__main__.py``, which starts the
  embedded emulator.

Each rule is checked twice: statically, over every import statement of every module (also
those inside functions), and at run time, by importing every module of a package in a fresh
interpreter and looking at what ended up in ``sys.modules``.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# No web framework, no network or event-loop library: the core is pure computation.
IO_AND_WEB = frozenset(
    {
        "aiohttp",
        "anyio",
        "asyncio",
        "fastapi",
        "httpx",
        "selectors",
        "sniffio",
        "socket",
        "ssl",
        "starlette",
        "uvicorn",
        "websockets",
        "yarl",
    }
)

RULES: dict[str, frozenset[str]] = {
    "signalr_protocol": frozenset({"app", "emulator"}) | IO_AND_WEB,
    "emulator": frozenset({"app"}),
    "app": frozenset({"emulator"}),
}
# The launcher of ``python -m app`` starts the embedded emulator: the one allowed crossing.
EXEMPT = {Path("app/__main__.py")}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported_roots(path: Path, root: Path = ROOT) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level > 1:
            # ``from ..x import y`` inside a package climbs to the project root's packages.
            parts = path.relative_to(root).parts[: -node.level]
            if not parts and node.module:
                roots.add(node.module.split(".")[0])
            elif not parts:  # ``from .. import emulator``
                roots.update(alias.name for alias in node.names)
    return roots


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_follow_the_direction_rules(package: str) -> None:
    """No module of a package imports a package its rule forbids (static check)."""
    modules = _modules(package)
    assert len(modules) >= 5, f"{package} has too few modules: is the layout as this test thinks?"
    breaches = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules
        if path.relative_to(ROOT) not in EXEMPT
        for name in sorted(_imported_roots(path) & RULES[package])
    ]
    assert breaches == []


def test_the_static_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The static check finds imports at module level, inside functions and relative ones."""
    (tmp_path / "signalr_protocol").mkdir()
    module = tmp_path / "signalr_protocol" / "probe.py"
    module.write_text(
        "import json\n"
        "def f():\n    from app.exceptions import ConfigurationError\n"
        "    import httpx.things\n"
        "from ..emulator import server\n"
        "from .. import uvicorn\n",
        encoding="utf-8",
    )
    assert _imported_roots(module, tmp_path) == {"json", "app", "httpx", "emulator", "uvicorn"}


# An X-ASRS-* header name written as a whole string (``"x-asrs-hub"``, ``b"X-ASRS-Event"``):
# reading or writing the upstream format by hand. Messages that merely mention a header
# ("Unknown X-ASRS-Category ...") are not whole names and do not count.
_ASRS_NAME = re.compile(r"x-asrs-[a-z-]+", re.IGNORECASE)


def _asrs_header_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            if _ASRS_NAME.fullmatch(text):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {text}")
    return found


def test_the_upstream_format_is_spelled_only_in_the_core() -> None:
    """No module of app or emulator names an X-ASRS-* header: the core reads and writes them."""
    assert _asrs_header_names(ROOT / "signalr_protocol" / "upstream.py")  # the check sees them
    spelled = [
        name
        for package in ("app", "emulator")
        for path in _modules(package)
        for name in _asrs_header_names(path)
    ]
    assert spelled == []


_LOAD_ALL = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
skip = set(sys.argv[2:])
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if info.name not in skip:
        importlib.import_module(info.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize("package", sorted(RULES))
def test_importing_a_package_loads_nothing_it_must_not(package: str) -> None:
    """Importing every module of a package in a fresh interpreter loads no forbidden package."""
    skip = [".".join(path.with_suffix("").parts) for path in EXEMPT if path.parts[0] == package]
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_ALL, package, *skip],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert package in loaded
    # The run-time check can only speak of third-party and project packages: the standard
    # library (asyncio, socket, ...) is loaded by the interpreter itself or by other imports.
    forbidden = RULES[package] - {"asyncio", "selectors", "socket", "ssl"}
    assert sorted(loaded & forbidden) == []
