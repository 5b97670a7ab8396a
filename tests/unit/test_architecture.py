"""The shape of the code, checked from its source so it stays true: no import circles, one write
path for record tables, thin HTTP handlers, nothing registered on import, and tests that
configure behaviour through the registry rather than by patching module globals."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "metacrm"
SYSTABLES = "metacrm.platform.systables"
# The only modules that write rows of record tables, and why.
RECORD_WRITERS = {
    # The record service: every create, update and delete of a record.
    "metacrm.runtime.records",
    # Schema migrations fill a new column's default into existing rows (and convert values on
    # a type change) in the transaction that changes the table, before any record write sees it.
    "metacrm.metadata.migrate",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of ours that `name` imports, anywhere in the file (TYPE_CHECKING blocks and
    function bodies included: each is a dependency all the same)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from pkg import mod` depends on the module when there is one.
                full = f"{base}.{alias.name}"
                targets.append(full if full in known else base)
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for target in edges:
                if target not in index:
                    index[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    advanced = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_circles_are_found_in_a_graph_that_has_them() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_metacrm() -> None:
    known = modules()
    graph = {name: imports_of(name, path, set(known)) for name, path in known.items()}
    assert circles(graph) == []


# ---- one write path -----------------------------------------------------------------------------

DML = {"insert", "update", "delete"}


@dataclass(frozen=True)
class Write:
    module: str
    line: int
    target: str


def _systable_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == SYSTABLES:
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _aliases(tree: ast.Module, systables: set[str]) -> set[str]:
    """Local names bound to a system table: `table = record_shares`, or the loop variable of
    `for table in SOME` where SOME is a tuple or list of system tables."""
    aliases = set(systables)
    collections: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        names = {t.id for t in targets if isinstance(t, ast.Name)}
        if isinstance(node.value, ast.Name) and node.value.id in aliases:
            aliases.update(names)
        elif isinstance(node.value, ast.Tuple | ast.List) and all(
            isinstance(e, ast.Name) and e.id in systables for e in node.value.elts
        ):
            collections.update(names)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.For)
            and isinstance(node.iter, ast.Name)
            and node.iter.id in collections
            and isinstance(node.target, ast.Name)
        ):
            aliases.add(node.target.id)
    return aliases


def _dml_functions(tree: ast.Module) -> set[str]:
    """Names under which this module imported SQLAlchemy's insert/update/delete."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            names.update(alias.asname or alias.name for alias in node.names if alias.name in DML)
    return names


def writes_in(name: str, path: Path) -> list[Write]:
    """Every INSERT, UPDATE or DELETE the module builds, with what it writes to: a system table
    (by name) or anything else — a record table."""
    source = path.read_text("utf-8")
    tree = ast.parse(source)
    systables = _aliases(tree, _systable_names(tree))
    functions = _dml_functions(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        target: ast.expr | None = None
        func = node.func
        if isinstance(func, ast.Name) and func.id in functions and node.args:
            target = node.args[0]  # update(table)
        elif (
            isinstance(func, ast.Attribute)
            and func.attr in DML
            and not node.args
            and not node.keywords
        ):
            target = func.value  # table.insert() (not a dict's update(key=…))
        if target is None:
            continue
        text = ast.unparse(target)
        if not (isinstance(target, ast.Name) and target.id in systables):
            found.append(Write(name, node.lineno, text))
    for node in ast.walk(tree):
        # Raw SQL would be a door around all of this.
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            words = node.value.upper().split()
            if words[:2] in (["INSERT", "INTO"], ["DELETE", "FROM"]) or (
                words[:1] == ["UPDATE"] and "SET" in words
            ):
                found.append(Write(name, node.lineno, f"raw SQL {node.value[:40]!r}"))
    return sorted(found, key=lambda w: w.line)


def test_the_write_scanner_sees_writes_to_record_tables() -> None:
    source = (
        "from sqlalchemy import update as change, insert\n"
        "from metacrm.platform.systables import events\n"
        "log = events\n"
        "KEPT: tuple = (events,)\n"
        "def f(conn, catalog, table):\n"
        "    for kept in KEPT:\n"
        "        conn.execute(kept.delete())\n"
        "    conn.execute(change(catalog.table('deal')).values(x=1))\n"
        "    conn.execute(table.insert())\n"
        "    conn.execute(insert(log))\n"
        "    conn.execute(events.delete())\n"
        "    conn.exec_driver_sql('DELETE FROM deal')\n"
    )
    path = ROOT / "tests" / "unit" / "_scanned_example.py"
    path.write_text(source)
    try:
        found = writes_in("example", path)
    finally:
        path.unlink()
    assert [(w.line, w.target) for w in found] == [
        (8, "catalog.table('deal')"),
        (9, "table"),
        (12, "raw SQL 'DELETE FROM deal'"),
    ]


def test_only_the_record_service_writes_record_tables() -> None:
    strays = [
        w
        for name, path in modules().items()
        if name not in RECORD_WRITERS
        for w in writes_in(name, path)
    ]
    assert strays == [], "record tables written outside the record service"


def test_the_third_party_plugin_of_the_tests_writes_only_through_the_record_service() -> None:
    """What the plugin author's guide (docs/plugins.md) asks of every plugin, kept true of ours."""
    sources = sorted((ROOT / "tests" / "plugins").rglob("*.py"))
    assert sources
    assert [w for path in sources for w in writes_in(path.stem, path)] == []


def test_http_handlers_run_no_sql_of_their_own() -> None:
    """The API modules are thin shells over runtime functions: they build no statements."""
    offenders = []
    for name, path in modules().items():
        if not name.startswith("metacrm.runtime.api."):
            continue
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (
                node.module == SYSTABLES
                or (
                    (node.module or "").startswith("sqlalchemy")
                    and {a.name for a in node.names} & {"select", *DML, "text"}
                )
            ):
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == []


def test_nothing_below_the_app_imports_it() -> None:
    """The app and the server sit on top: the kernel, the metadata model, the runtime and the
    plugins never import them."""
    known = set(modules())
    above = ("metacrm.app", "metacrm.server", "metacrm.cli")
    offenders = []
    for name, path in modules().items():
        if name.startswith(above) or name == "metacrm":
            continue
        for target in imports_of(name, path, known):
            if target.startswith(above):
                offenders.append(f"{name} imports {target}")
    assert offenders == []


def test_app_pages_run_no_sql_of_their_own() -> None:
    """Pages call the runtime's functions (the record service, the permission code, the rule
    language): no statement of their own, no system table."""
    offenders = []
    for name, path in modules().items():
        if not name.startswith("metacrm.app"):
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and (
                node.module == SYSTABLES
                or (
                    (node.module or "").startswith("sqlalchemy")
                    and {a.name for a in node.names} & {"select", *DML, "text", "func"}
                )
            ):
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == []


# ---- registries ---------------------------------------------------------------------------------

# Imports every module, one at a time, and reports any import that changed the size of a
# container some other, already imported module holds: registering itself somewhere.
_SIDE_EFFECTS = """
import importlib, json, sys
names = json.loads(sys.argv[1])
def sizes():
    found = {}
    for mod_name, module in list(sys.modules.items()):
        if not mod_name.startswith("metacrm"):
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, (dict, list, set)) and not attr.startswith("__"):
                found[(mod_name, attr)] = (id(value), len(value))
    return found
changed = []
for name in names:
    before = sizes()
    importlib.import_module(name)
    after = sizes()
    for key, (ident, size) in before.items():
        if key in after and after[key][0] == ident and after[key][1] != size:
            changed.append(f"importing {name} changed {key[0]}.{key[1]}")
print(json.dumps(changed))
"""


def test_nothing_registers_itself_on_import() -> None:
    import json

    names = sorted(modules())
    result = subprocess.run(
        [sys.executable, "-c", _SIDE_EFFECTS, json.dumps(names)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert json.loads(result.stdout) == []


def test_two_registries_share_nothing() -> None:
    from metacrm.runtime.startup import build_registry

    first, second = build_registry(), build_registry()
    assert set(first.tasks) == set(second.tasks) != set()
    assert first.tasks is not second.tasks
    assert first.write_hooks is not second.write_hooks
    first.task("only.here", lambda _host: None)
    assert "only.here" not in second.tasks


def test_tests_do_not_patch_private_or_constant_module_globals() -> None:
    """Behaviour is configured through the registry (retry and delivery policies, consumers,
    hooks, the clock, the queue); what tests may still replace are functions, to spy on them or
    to hold a race at a barrier."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "setattr"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
            ):
                attr = node.args[1].value
                if attr.startswith("_") or attr.isupper():
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {attr}")
    assert offenders == []
