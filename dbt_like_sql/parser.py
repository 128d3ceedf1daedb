"""parse_project: read `models/` (SQL files + dbt-style properties YAML) into a Manifest.

The SQL files are Jinja templates rendered once, here, in a sandbox: `ref()`/`source()`
record the dependency and return the table's name, `config()` records the config, and
`partition.<key>` renders as a scalar subquery over the one-row `__partition` table the
executor registers. So partition values are bound as data and never reach the SQL text,
and a template cannot branch on them. Macros (`macros/*.sql`) are parsed with the models
and callable from every one of them. Parsing reads the models and macros directories
only: no lake, no Polars, so definitions load fast and offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment

from dbt_like_sql.errors import (
    CycleError,
    DuplicateModelError,
    ProjectError,
    UnknownRefError,
)
from dbt_like_sql.manifest import (
    PARTITION_KEYS,
    Manifest,
    Model,
    ModelConfig,
    Source,
    find_cycle,
    topological_order,
)
from dbt_like_sql.properties import identifier, model_properties, read_properties
from dbt_like_sql.templating import MacroFile, environment, load_macros, render

#: The project's own models and macros.
MODELS_DIR: Final = Path(__file__).parent / "models"
MACROS_DIR: Final = Path(__file__).parent / "macros"

#: The table the executor registers with the partition's values (one row).
PARTITION_TABLE: Final = "__partition"
#: What every model's template sees besides the macros; no macro may take these names.
MODEL_CONTEXT: Final = ("ref", "source", "config", "partition")

_CONFIG_KEYS: Final = frozenset({"materialized", "partition_by", "tags", "meta"})
_MATERIALIZATIONS: Final = frozenset({"partitioned"})


def parse_project(
    models_dir: Path | str,
    sources: Iterable[str] = (),
    macros_dir: Path | str | None = MACROS_DIR,
) -> Manifest:
    """Parse every `*.sql` and `*.yml` under `models_dir` into a Manifest.

    `sources` adds lake tables models may ref besides those declared under `sources:` in
    the YAML. `macros_dir` holds the macros every model may call: the project's own by
    default (so a copy of the models folder still compiles), None for none. Raises a
    `ProjectError` subclass naming the file for: a duplicate model name, an unknown ref
    (names the ref), a cycle (names it), a model in YAML with no SQL file, an unknown data
    test or config key, a template error, an undefined macro, or a bad macros file.
    """
    root = Path(models_dir)
    if not root.is_dir():
        raise ProjectError(root, "models directory not found")
    env = environment()
    macros_root = None if macros_dir is None else Path(macros_dir).resolve()
    macros = load_macros(env, macros_root, MODEL_CONTEXT)
    properties = read_properties(root)
    declared_sources = dict(properties.sources)
    for name in sources:
        declared_sources.setdefault(name, Source(name=identifier(root, name, "source")))

    sql_paths: dict[str, Path] = {}
    for path in sorted(root.rglob("*.sql")):
        if macros_root is not None and path.resolve().is_relative_to(macros_root):
            continue  # a macros folder kept inside the models folder holds no models
        name = identifier(path, path.stem, "model")
        if name in sql_paths:
            raise DuplicateModelError(path, name, sql_paths[name])
        if name in declared_sources:
            raise DuplicateModelError(path, name, "the sources")
        sql_paths[name] = path

    for name, (yml_path, _) in properties.models.items():
        if name not in sql_paths:
            raise ProjectError(yml_path, f"model {name!r} has no SQL file (expected {name}.sql)")

    models: dict[str, Model] = {}
    for name, path in sql_paths.items():
        yml_path, entry = properties.models.get(name, (path, {}))
        models[name] = _parse_model(env, macros, name, path, yml_path, entry)

    known = sorted({*models, *declared_sources})
    for model in models.values():
        for ref in model.refs:
            if ref not in models and ref not in declared_sources:
                raise UnknownRefError(model.path, ref, known)

    deps = {name: model.refs for name, model in models.items()}
    order = topological_order(deps)
    if order is None:
        cycle = find_cycle(deps)
        raise CycleError(models[cycle[0]].path, cycle)
    return Manifest(models={name: models[name] for name in order}, sources=declared_sources)


# --- SQL templates --------------------------------------------------------------------------


def _partition_placeholders() -> dict[str, str]:
    return {key: f"(SELECT {key} FROM {PARTITION_TABLE})" for key in PARTITION_KEYS}


def _parse_model(
    env: Environment,
    macros: tuple[MacroFile, ...],
    name: str,
    path: Path,
    yml_path: Path,
    entry: Mapping[str, Any],
) -> Model:
    raw_sql = path.read_text(encoding="utf-8")
    refs: list[str] = []
    sql_config: dict[str, Any] = {}

    def ref(*args: str) -> str:
        if len(args) != 1 or not isinstance(args[0], str):
            raise ProjectError(path, f"ref() takes one model or table name, got {args!r}")
        return _record(refs, identifier(path, args[0], "ref"))

    def source(source_name: str, table_name: str) -> str:
        """dbt's `source('lake', 'trades')`: the same dependency as `ref('trades')`."""
        identifier(path, source_name, "source")
        return _record(refs, identifier(path, table_name, "source table"))

    def config(**kwargs: Any) -> str:
        sql_config.update(kwargs)
        return ""

    context = {
        "ref": ref,
        "source": source,
        "config": config,
        "partition": _partition_placeholders(),
    }
    compiled = render(env, path, raw_sql, context, macros)

    yml_config = entry.get("config") or {}
    if not isinstance(yml_config, Mapping):
        raise ProjectError(yml_path, f"{name}: `config:` must be a mapping")
    merged_config = {**yml_config, **sql_config}  # the SQL file's config() wins, as in dbt
    columns, tests = model_properties(yml_path, name, entry)
    return Model(
        name=name,
        path=path,
        raw_sql=raw_sql,
        compiled_sql=compiled.strip() + "\n",
        refs=tuple(refs),
        config=_parse_config(path, merged_config),
        description=str(entry.get("description") or ""),
        columns=columns,
        tests=tests,
    )


def _record(refs: list[str], name: str) -> str:
    if name not in refs:
        refs.append(name)
    return name


def _parse_config(path: Path, config: Mapping[str, Any]) -> ModelConfig:
    unknown = set(config) - _CONFIG_KEYS
    if unknown:
        raise ProjectError(
            path, f"unknown config key(s) {sorted(unknown)}; supported: {sorted(_CONFIG_KEYS)}"
        )
    materialized = config.get("materialized", "partitioned")
    if materialized not in _MATERIALIZATIONS:
        raise ProjectError(
            path, f"materialized={materialized!r} is not supported (only 'partitioned')"
        )
    partition_by = tuple(config.get("partition_by", PARTITION_KEYS))
    if not partition_by or not set(partition_by) <= set(PARTITION_KEYS):
        raise ProjectError(
            path,
            f"partition_by={list(partition_by)} must be a non-empty subset of {PARTITION_KEYS}",
        )
    return ModelConfig(
        materialized=materialized,
        partition_by=partition_by,
        tags=tuple(config.get("tags", ())),
        meta=dict(config.get("meta", {})),
    )
