"""Properties files (dbt's `version: 2` YAML): sources, model descriptions, columns, tests.

Kept apart from the SQL templates so the two formats can each be read (and fixed) alone.
Every error names the YAML file and the model.column it is about.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from dbt_like_sql.errors import DuplicateModelError, ProjectError
from dbt_like_sql.manifest import Column, Source, TestSpec

_IDENTIFIER: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_YAML_LOADER: Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Supported data tests: where they may appear, required and optional arguments.
#: `dbt_utils.` prefixes are accepted, as in a real dbt project's YAML.
TEST_ARGUMENTS: Final[dict[str, tuple[str, frozenset[str], frozenset[str]]]] = {
    "not_null": ("column", frozenset(), frozenset()),
    "unique": ("column", frozenset(), frozenset()),
    "accepted_values": ("column", frozenset({"values"}), frozenset()),
    "accepted_range": ("column", frozenset(), frozenset({"min_value", "max_value", "inclusive"})),
    "unique_combination_of_columns": ("model", frozenset({"combination_of_columns"}), frozenset()),
    "expression_is_true": ("any", frozenset({"expression"}), frozenset()),
}


def identifier(path: Path, name: Any, what: str) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ProjectError(
            path, f"invalid {what} name {name!r}: use letters, digits and _, starting with a letter"
        )
    return name


@dataclass
class Properties:
    """Everything the YAML files declare: model entries (with their file) and sources."""

    models: dict[str, tuple[Path, dict[str, Any]]] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)


def model_properties(
    path: Path, name: str, entry: Mapping[str, Any]
) -> tuple[dict[str, Column], tuple[TestSpec, ...]]:
    """A model entry's columns and all its tests (column tests first, then model-level)."""
    columns = _parse_columns(path, name, entry.get("columns") or [])
    model_tests = [
        _parse_test(path, name, raw, column=None) for raw in _test_list(path, name, entry)
    ]
    return columns, _unique_test_names(
        [*(t for c in columns.values() for t in c.tests), *model_tests]
    )


def read_properties(root: Path) -> Properties:
    """Every `*.yml` / `*.yaml` under `root`; a model or source declared twice is refused."""
    found = Properties()
    for path in sorted([*root.rglob("*.yml"), *root.rglob("*.yaml")]):
        try:
            document = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER) or {}
        except yaml.YAMLError as exc:
            raise ProjectError(path, f"invalid YAML: {exc}") from exc
        if not isinstance(document, dict) or document.get("version") != 2:
            raise ProjectError(path, "a properties file must be a mapping with `version: 2`")
        for entry in _entries(path, document, "models"):
            name = identifier(path, entry.get("name"), "model")
            if name in found.models:
                raise DuplicateModelError(path, name, found.models[name][0])
            found.models[name] = (path, entry)
        for group in _entries(path, document, "sources"):
            source_name = identifier(path, group.get("name"), "source")
            for table in group.get("tables") or []:
                name = identifier(path, table.get("name"), "source table")
                if name in found.sources:
                    raise ProjectError(path, f"source table {name!r} is declared twice")
                found.sources[name] = Source(
                    name=name,
                    source_name=source_name,
                    description=str(table.get("description") or ""),
                    columns=_parse_columns(path, name, table.get("columns") or []),
                )
    return found


def _entries(path: Path, document: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    entries = document.get(key) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ProjectError(path, f"`{key}:` must be a list of mappings")
    return entries


def _test_list(path: Path, owner: str, entry: Mapping[str, Any]) -> list[Any]:
    tests = [*(entry.get("data_tests") or []), *(entry.get("tests") or [])]
    if not all(isinstance(t, str | dict) for t in tests):
        raise ProjectError(path, f"{owner}: data_tests must be names or mappings")
    return tests


def _parse_columns(path: Path, owner: str, entries: list[Any]) -> dict[str, Column]:
    columns: dict[str, Column] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise ProjectError(path, f"{owner}: each column must be a mapping with a name")
        name = identifier(path, entry.get("name"), "column")
        tests = tuple(
            _parse_test(path, owner, raw, column=name)
            for raw in _test_list(path, f"{owner}.{name}", entry)
        )
        columns[name] = Column(name, str(entry.get("description") or ""), tests)
    return columns


def _parse_test(path: Path, owner: str, raw: Any, column: str | None) -> TestSpec:
    """One entry of `data_tests:`: `not_null`, or `{accepted_range: {min_value: 0, ...}}`.

    Both dbt spellings of arguments are accepted: inline, or under `arguments:` (dbt 1.10+);
    `config: {severity: warn}` makes a failure a warning; `name:` overrides the generated
    name (`<test>_<column>`), as in dbt.
    """
    if isinstance(raw, str):
        test, body = raw, {}
    elif len(raw) == 1:
        test, body = next(iter(raw.items()))
        body = body or {}
    else:
        raise ProjectError(path, f"{owner}: a test mapping must have exactly one key, got {raw}")
    test = str(test).removeprefix("dbt_utils.")
    where = f"{owner}.{column}" if column else owner
    if test not in TEST_ARGUMENTS:
        raise ProjectError(
            path, f"{where}: unknown data test {test!r}; supported: {', '.join(TEST_ARGUMENTS)}"
        )
    if not isinstance(body, dict):
        raise ProjectError(path, f"{where}: arguments of {test!r} must be a mapping")
    body = dict(body)
    settings = body.pop("config", None) or {}
    custom_name = body.pop("name", None)
    kwargs = {**(body.pop("arguments", None) or {}), **body}
    scope, required, optional = TEST_ARGUMENTS[test]
    if scope == "column" and column is None:
        raise ProjectError(path, f"{where}: {test!r} is a column test; list it under a column")
    if scope == "model" and column is not None:
        raise ProjectError(path, f"{where}: {test!r} is a model test; list it under the model")
    missing, extra = required - kwargs.keys(), kwargs.keys() - required - optional
    if missing or extra:
        raise ProjectError(
            path,
            f"{where}: {test!r} needs {sorted(required)} (optional {sorted(optional)}); "
            f"missing {sorted(missing)}, unexpected {sorted(extra)}",
        )
    severity = str(settings.get("severity", "error")).lower()
    if severity not in ("error", "warn"):
        raise ProjectError(path, f"{where}: severity must be error or warn, got {severity!r}")
    suffix = "_".join(kwargs["combination_of_columns"]) if test.startswith("unique_comb") else ""
    name = custom_name or "_".join(part for part in (test, column, suffix) if part)
    if not re.fullmatch(r"[A-Za-z0-9_]+", str(name)):
        raise ProjectError(path, f"{where}: test name {name!r} must be letters, digits and _")
    return TestSpec(name=name, test=test, column=column, kwargs=kwargs, severity=severity)  # type: ignore[arg-type]


def _unique_test_names(tests: list[TestSpec]) -> tuple[TestSpec, ...]:
    """Suffix repeated names (`accepted_values_side_2`) so each is a distinct check."""
    seen: dict[str, int] = {}
    unique: list[TestSpec] = []
    for spec in tests:
        seen[spec.name] = seen.get(spec.name, 0) + 1
        if seen[spec.name] > 1:
            spec = TestSpec(
                f"{spec.name}_{seen[spec.name]}", spec.test, spec.column, spec.kwargs, spec.severity
            )
        unique.append(spec)
    return tuple(unique)
