"""The dependency rules of docs/architecture.md, checked by reading every module's imports.

Imports are read with `ast` (module level and inside functions alike; `if TYPE_CHECKING:` blocks
are type hints, not dependencies). Writes are found the same way: a call like
`Lead.objects.filter(...).update(...)` anywhere outside the module allowed to write that table.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from leadcrm.models import SCORE_FIELDS as LEAD_SCORE_FIELDS

ROOT = Path(__file__).resolve().parents[1]
PRODUCT_APPS = (
    "leadcrm",
    "scoring",
    "chatbot",
    "accounts",
    "audit",
    "privacy",
    "dataio",
    "tracking",
    "outreach",
    "sequences",
    "webhooks",
)
# Lower layers never import higher ones (docs/architecture.md); demo and bench sit on top of all.
LAYERS = (
    "config",
    "leadcrm",
    "scoring",
    "chatbot",
    "accounts",
    "audit",
    "privacy",
    "dataio",
    "tracking",
    "outreach",
    "sequences",
    "webhooks",
)
ON_TOP = ("demo", "bench")
PACKAGES = ("config", *PRODUCT_APPS, *ON_TOP)
# The CRM core's one call into another app.
ALLOWED_CORE_CALL = ("leadcrm.services", "scoring.services", "request_rescore")
WRITE_METHODS = {
    "create",
    "update",
    "delete",
    "bulk_create",
    "bulk_update",
    "get_or_create",
    "update_or_create",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. "leadcrm.services"
    target: str  # the imported module, e.g. "scoring.services"
    names: tuple[str, ...]  # names imported from it ("from x import a, b")
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


KNOWN_MODULES = {module_name(path) for path in source_files()}


def imports_of(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_lines(tree)
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", 0) in skip:
            continue
        if isinstance(node, ast.Import):
            found.extend(Import(me, alias.name, (), node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            names = tuple(alias.name for alias in node.names)
            found.append(Import(me, target, names, node.lineno))
            # "from scoring import services" imports the module scoring.services.
            found.extend(
                Import(me, f"{target}.{name}", (), node.lineno)
                for name in names
                if f"{target}.{name}" in KNOWN_MODULES
            )
    return found


def app_of(module: str) -> str:
    top = module.split(".")[0]
    return top if top in PACKAGES else ""


ALL_IMPORTS = [imp for path in source_files() for imp in imports_of(path)]
MODULES = KNOWN_MODULES


def where(imp: Import) -> str:
    return f"{imp.module} (line {imp.line}) imports {imp.target}"


def test_product_apps_import_config_only_for_the_on_commit_helper() -> None:
    offenders = [
        where(i)
        for i in ALL_IMPORTS
        if app_of(i.module) in PRODUCT_APPS
        and app_of(i.target) == "config"
        and not (i.target == "config.on_commit" or i.target == "config" and i.names == ("on_commit",))
    ]
    assert offenders == []


def test_the_crm_core_imports_no_other_app_but_request_rescore() -> None:
    offenders = []
    for i in ALL_IMPORTS:
        if app_of(i.module) != "leadcrm" or app_of(i.target) in ("", "leadcrm"):
            continue
        if i.target == "config.on_commit":  # the on-commit helper every app may use
            continue
        if (i.module, i.target, i.names) == (
            ALLOWED_CORE_CALL[0],
            ALLOWED_CORE_CALL[1],
            ALLOWED_CORE_CALL[2:],
        ):
            continue
        offenders.append(where(i))
    assert offenders == []


def test_lower_layers_never_import_higher_ones() -> None:
    offenders = []
    for i in ALL_IMPORTS:
        src, dst = app_of(i.module), app_of(i.target)
        if src not in LAYERS or dst not in LAYERS or src == "config":
            continue  # config wires the apps (settings, urls, asgi) by dotted path
        if LAYERS.index(dst) > LAYERS.index(src) and (i.module, i.target) != ALLOWED_CORE_CALL[:2]:
            offenders.append(where(i))
    assert offenders == []


def test_chat_never_depends_on_scoring() -> None:
    assert [
        where(i) for i in ALL_IMPORTS if app_of(i.module) == "chatbot" and app_of(i.target) == "scoring"
    ] == []


def test_nothing_imports_demo_or_bench() -> None:
    offenders = [
        where(i)
        for i in ALL_IMPORTS
        if app_of(i.target) in ON_TOP and app_of(i.module) not in ON_TOP and app_of(i.module) != "config"
    ]
    assert offenders == []
    # config wires URLs by dotted string (include("demo.urls")), never by import.
    assert [
        where(i) for i in ALL_IMPORTS if app_of(i.module) == "config" and app_of(i.target) in ON_TOP
    ] == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules() -> None:
    """Module-level and function-level imports alike: no two modules of the product import each other."""
    edges: dict[str, set[str]] = {}
    for i in ALL_IMPORTS:
        if i.target in MODULES and i.target != i.module and not i.module.startswith(i.target + "."):
            edges.setdefault(i.module, set()).add(i.target)
    assert _cycles(edges) == []


def test_no_app_level_cycle_but_the_one_named_call() -> None:
    edges: dict[str, set[str]] = {}
    for i in ALL_IMPORTS:
        src, dst = app_of(i.module), app_of(i.target)
        # scoring.ml (predictive) is part of scoring here: their modules are checked one by one above.
        # Apps reach config only for its on-commit helper (the rule above); config wires the apps.
        if not dst or dst == "config" or src == dst or (i.module, i.target) == ALLOWED_CORE_CALL[:2]:
            continue
        edges.setdefault(src, set()).add(dst)
    assert _cycles(edges) == []


# --- One writer per table ---------------------------------------------------------------------------


def _writes(path: Path, model: str) -> Iterator[tuple[int, str, set[str]]]:
    """(line, method, keyword names) of each `Model.objects…<write>(…)` call in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in WRITE_METHODS:
            continue
        chain = node.func.value
        while isinstance(chain, ast.Call | ast.Attribute):
            chain = chain.func if isinstance(chain, ast.Call) else chain.value
        text = ast.unparse(node.func.value)
        if isinstance(chain, ast.Name) and chain.id == model and ".objects" in f"{model}{text[len(model) :]}":
            yield node.lineno, node.func.attr, {k.arg for k in node.keywords if k.arg}


SCORE_FIELDS = {*LEAD_SCORE_FIELDS, "rescore_requested_at"}


@pytest.mark.parametrize("model", ["Lead", "Interaction"])
def test_only_the_crm_services_and_the_score_store_write_leads_and_interactions(model: str) -> None:
    offenders = []
    for path in source_files():
        module = module_name(path)
        if module == "leadcrm.services" or app_of(module) == "bench":  # bench generates its own data
            continue
        for line, method, keywords in _writes(path, model):
            # The score store writes score fields only (and reads leads to compare).
            if (
                module == "scoring.store"
                and model == "Lead"
                and method == "update"
                and keywords <= SCORE_FIELDS
            ):
                continue
            offenders.append(f"{module} line {line}: {model}.objects….{method}()")
    assert offenders == []


def test_score_fields_are_written_by_the_score_store_alone() -> None:
    offenders = []
    for path in source_files():
        module = module_name(path)
        if module == "scoring.store" or app_of(module) == "bench":
            continue
        for line, method, keywords in _writes(path, "Lead"):
            if keywords & SCORE_FIELDS:
                offenders.append(
                    f"{module} line {line}: Lead.objects….{method}({sorted(keywords & SCORE_FIELDS)})"
                )
        text = path.read_text()
        for field in ("score_breakdown", "ml_factors"):
            if f"SET {field}" in text or f"{field} = s.{field}" in text:
                offenders.append(f"{module}: raw SQL sets {field}")
    assert offenders == []


def test_the_checks_would_catch_a_second_writer(tmp_path: Path) -> None:
    """The write finder is not vacuous: it sees the admin's old direct write and a raw score update."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def save(obj):\n"
        "    Lead.objects.filter(pk=obj.pk).update(status='won')\n"
        "    Interaction.objects.create(lead=obj, kind=1)\n"
        "    Lead.objects.filter(pk=1).update(rule_score=3)\n"
    )
    assert [m for _, m, _ in _writes(sample, "Lead")] == ["update", "update"]
    assert [m for _, m, _ in _writes(sample, "Interaction")] == ["create"]
    edges = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert _cycles(edges) == [["a", "b"]]


def test_raw_sql_names_tables_from_the_models_not_as_literals() -> None:
    """Scoring's SQL reads the CRM's tables by Model._meta.db_table; a literal would break silently."""
    from django.apps import apps

    tables = {model._meta.db_table for model in apps.get_models()}
    offenders = []
    for path in source_files():
        if app_of(module_name(path)) not in PRODUCT_APPS:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                words = set(node.value.replace(",", " ").replace("(", " ").replace(")", " ").split())
                for table in sorted(words & tables):
                    offenders.append(f"{module_name(path)} line {node.lineno}: {table}")
    assert offenders == []
