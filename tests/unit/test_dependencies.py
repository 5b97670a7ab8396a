"""What the package needs at run time is declared where a plain `pip install` reads it, and
constraints.txt pins everything the project installs (CI gets the versions we test with).

A module imported by metacrm but declared only in an extra breaks `pip install metacrm` at the
first request that reaches it (issue 10: httpx was only in `dev`)."""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "metacrm"


def third_party_imports(sources: Iterable[Path]) -> dict[str, set[str]]:
    """Top-level module names imported anywhere in the sources (function bodies and
    TYPE_CHECKING blocks too), with the files importing each; the standard library left out."""
    found: dict[str, set[str]] = {}
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("__future__", "metacrm"):
                    found.setdefault(top, set()).add(_shown(path))
    return found


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def declared(pyproject: Path, extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text("utf-8"))["project"]
    raw = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return [Requirement(line) for line in raw]


def undeclared_imports(
    imports: dict[str, set[str]], dependencies: list[Requirement]
) -> dict[str, str]:
    """Each imported module whose distribution is not a runtime dependency, with why."""
    names = {canonicalize_name(req.name) for req in dependencies}
    providers = metadata.packages_distributions()
    problems = {}
    for module, files in sorted(imports.items()):
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        where = ", ".join(sorted(files))
        if not dists:
            problems[module] = f"imported by {where} but not installed at all"
        elif not dists & names:
            problems[module] = f"imported by {where}; declare {sorted(dists)[0]} in dependencies"
    return problems


def installed_closure(requirements: Iterable[Requirement]) -> dict[str, str]:
    """Every distribution the requirements pull in (extras and markers honoured), with the
    version installed here."""
    found: dict[str, str] = {}
    pending = [(req, frozenset(req.extras)) for req in requirements]
    while pending:
        req, extras = pending.pop()
        name = canonicalize_name(req.name)
        if name in found:
            continue
        dist = metadata.distribution(req.name)
        found[name] = dist.version
        for raw in dist.requires or []:
            child = Requirement(raw)
            environments = [{"extra": e} for e in sorted(extras)] or [{"extra": ""}]
            if child.marker and not any(child.marker.evaluate(env) for env in environments):
                continue
            pending.append((child, frozenset(child.extras)))
    return found


def pins(constraints: Path) -> dict[str, str]:
    pinned = {}
    for line in constraints.read_text("utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pinned[canonicalize_name(name)] = version.strip()
    return pinned


# ---- the audit -------------------------------------------------------------------------------


def test_every_module_metacrm_imports_is_a_declared_runtime_dependency() -> None:
    imports = third_party_imports(PACKAGE.rglob("*.py"))
    assert "httpx" in imports and "sqlalchemy" in imports  # the walk sees function bodies too
    problems = undeclared_imports(imports, declared(ROOT / "pyproject.toml"))
    assert not problems, "\n".join(f"{m}: {why}" for m, why in problems.items())


def test_constraints_pin_every_installed_dependency_at_the_version_installed() -> None:
    everything = installed_closure([Requirement("metacrm[dev]")])
    everything.pop("metacrm")
    pinned = pins(ROOT / "constraints.txt")
    unpinned = sorted(set(everything) - set(pinned))
    assert not unpinned, f"add to constraints.txt: {unpinned}"
    drifted = {n: (pinned[n], v) for n, v in everything.items() if pinned[n] != v}
    assert not drifted, f"constraints.txt pin vs installed: {drifted}"


# ---- the audit can fail ----------------------------------------------------------------------


def test_an_import_declared_only_in_an_extra_is_reported(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def send():\n    import httpx\n    from jinja2 import Template\n")
    imports = third_party_imports([module])
    assert set(imports) == {"httpx", "jinja2"}
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["jinja2>=3"]\n'
        '[project.optional-dependencies]\ndev = ["httpx>=0.27"]\n'
    )
    problems = undeclared_imports(imports, declared(pyproject))
    assert list(problems) == ["httpx"]
    assert "m.py" in problems["httpx"] and "declare httpx" in problems["httpx"]


def test_standard_library_and_own_imports_are_not_dependencies(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from __future__ import annotations\nimport json, os.path\n"
        "from metacrm.platform import db\nfrom . import sibling\n"
    )
    assert third_party_imports([module]) == {}
