"""Parsing: the project's manifest, the ref graph, and every error naming its file."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbt_like_sql import (
    MODELS_DIR,
    CycleError,
    DuplicateModelError,
    ProjectError,
    UnknownRefError,
    load_manifest,
    parse_project,
)

SOURCES_YML = """
version: 2
sources:
  - name: lake
    tables:
      - name: trades
"""


def write_project(root: Path, models: dict[str, str], yml: str = SOURCES_YML) -> Path:
    for name, sql in models.items():
        path = root / f"{name}.sql"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql)
    (root / "schema.yml").write_text(yml)
    return root


def test_the_project_parses_with_every_model_after_what_it_refs() -> None:
    manifest = load_manifest()
    assert set(manifest.order) == {"bars_1m", "bars_1h", "bars_1d", "spread_1m", "daily_summary"}
    position = {name: i for i, name in enumerate(manifest.order)}
    for name in manifest.order:
        for parent in manifest.model_parents(name):
            assert position[parent] < position[name]
    assert manifest.parents("bars_1m") == ("trades",)
    assert manifest.model_parents("bars_1h") == ("bars_1m",)
    assert set(manifest.source_parents("spread_1m")) == {"quotes", "ticks_depth"}
    assert set(manifest.children("bars_1m")) == {"bars_1h", "bars_1d"}
    assert set(manifest.parents("daily_summary")) == {
        "bars_1d",
        "spread_1m",
        "trades",
        "quotes",
        "stream_events",
    }


def test_every_model_has_a_description_and_documented_tested_columns() -> None:
    manifest = load_manifest()
    for model in manifest.models.values():
        assert model.description, model.name
        assert model.columns and all(c.description for c in model.columns.values()), model.name
        assert model.tests, model.name
        assert model.config.partition_by == ("exchange", "symbol", "date")
        names = [t.name for t in model.tests]
        assert len(names) == len(set(names)), f"{model.name}: check names repeat"


def test_parsing_the_models_dir_twice_gives_the_same_manifest() -> None:
    # How fast parsing is belongs to benchmarks/, not to a test a slow machine would fail.
    first, second = parse_project(MODELS_DIR), parse_project(MODELS_DIR)
    assert first.models.keys() == second.models.keys()
    assert all(first.model(n).compiled_sql == second.model(n).compiled_sql for n in first.models)


def test_partition_variables_compile_to_subqueries_never_to_values() -> None:
    summary = load_manifest().model("daily_summary")
    assert "{{" not in summary.compiled_sql
    assert "(SELECT symbol FROM __partition) AS symbol" in summary.compiled_sql
    assert "BTCUSDT" not in summary.compiled_sql


def test_refs_are_ordered_topologically_with_ties_broken_by_name(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        {
            "c": "SELECT * FROM {{ ref('b') }} JOIN {{ ref('a') }} USING (x)",
            "b": "SELECT * FROM {{ ref('a') }}",
            "a": "SELECT * FROM {{ ref('trades') }}",
            "d": "SELECT * FROM {{ ref('trades') }}",
        },
    )
    manifest = parse_project(root)
    assert manifest.order == ("a", "b", "c", "d")  # the smallest ready name first
    assert manifest.parents("c") == ("b", "a")
    assert manifest.select(["c", "a"]) == ("a", "c")


def test_a_cycle_is_refused_naming_the_cycle(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        {
            "a": "SELECT * FROM {{ ref('c') }}",
            "b": "SELECT * FROM {{ ref('a') }}",
            "c": "SELECT * FROM {{ ref('b') }}",
            "d": "SELECT * FROM {{ ref('trades') }}",
        },
    )
    with pytest.raises(CycleError) as caught:
        parse_project(root)
    assert caught.value.cycle == ["a", "c", "b", "a"]
    assert "a -> c -> b -> a" in str(caught.value)
    assert "a.sql" in str(caught.value)


def test_a_model_that_refs_itself_is_a_cycle(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"a": "SELECT * FROM {{ ref('a') }}"})
    with pytest.raises(CycleError, match="a -> a"):
        parse_project(root)


def test_an_unknown_ref_is_refused_naming_the_file_and_the_ref(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"bars": "SELECT * FROM {{ ref('tardes') }}"})
    with pytest.raises(UnknownRefError) as caught:
        parse_project(root)
    assert caught.value.ref == "tardes"
    assert caught.value.path == root / "bars.sql"
    assert "bars.sql" in str(caught.value) and "'tardes'" in str(caught.value)


def test_sources_can_be_passed_in_instead_of_declared(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"m": "SELECT * FROM {{ ref('quotes') }}"})
    with pytest.raises(UnknownRefError):
        parse_project(root)
    assert parse_project(root, sources=["quotes"]).source_parents("m") == ("quotes",)


def test_dbt_source_function_refs_a_source_table(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"m": "SELECT * FROM {{ source('lake', 'trades') }}"})
    model = parse_project(root).model("m")
    assert model.refs == ("trades",)
    assert model.compiled_sql.strip() == "SELECT * FROM trades"


def test_duplicate_model_names_in_two_folders_are_refused(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        {"staging/m": "SELECT 1 AS x", "marts/m": "SELECT 2 AS x"},
    )
    with pytest.raises(DuplicateModelError) as caught:
        parse_project(root)
    assert "'m'" in str(caught.value)
    assert {caught.value.path.parent.name, caught.value.other.parent.name} == {"staging", "marts"}


def test_a_model_named_like_a_source_table_is_refused(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"trades": "SELECT 1 AS x"})
    with pytest.raises(DuplicateModelError, match="trades"):
        parse_project(root)


def test_a_model_in_schema_yml_without_a_sql_file_is_refused(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        {"a": "SELECT * FROM {{ ref('trades') }}"},
        SOURCES_YML + "models:\n  - name: ghost\n    description: nobody wrote me\n",
    )
    with pytest.raises(ProjectError, match=r"schema\.yml: model 'ghost' has no SQL file"):
        parse_project(root)


def test_an_unknown_data_test_is_refused_naming_the_file(tmp_path: Path) -> None:
    yml = SOURCES_YML + (
        "models:\n  - name: a\n    columns:\n      - name: x\n        data_tests: [is_positive]\n"
    )
    root = write_project(tmp_path, {"a": "SELECT * FROM {{ ref('trades') }}"}, yml)
    with pytest.raises(ProjectError) as caught:
        parse_project(root)
    message = str(caught.value)
    assert "schema.yml" in message and "a.x" in message and "'is_positive'" in message


def test_a_data_test_missing_its_arguments_is_refused(tmp_path: Path) -> None:
    yml = SOURCES_YML + (
        "models:\n  - name: a\n    columns:\n      - name: side\n"
        "        data_tests:\n          - accepted_values: {valuez: [buy]}\n"
    )
    root = write_project(tmp_path, {"a": "SELECT * FROM {{ ref('trades') }}"}, yml)
    with pytest.raises(ProjectError, match=r"missing \['values'\], unexpected \['valuez'\]"):
        parse_project(root)


def test_data_tests_accept_dbt_spellings_severity_and_names(tmp_path: Path) -> None:
    yml = (
        SOURCES_YML
        + """
models:
  - name: a
    tests:
      - dbt_utils.unique_combination_of_columns:
          arguments:
            combination_of_columns: [x, y]
    columns:
      - name: x
        tests:
          - not_null
          - dbt_utils.accepted_range:
              min_value: 0
              config: {severity: warn}
      - name: y
        data_tests:
          - accepted_values:
              name: y_is_a_side
              values: [buy, sell]
"""
    )
    root = write_project(tmp_path, {"a": "SELECT * FROM {{ ref('trades') }}"}, yml)
    tests = {t.name: t for t in parse_project(root).model("a").tests}
    assert list(tests) == [
        "not_null_x",
        "accepted_range_x",
        "y_is_a_side",
        "unique_combination_of_columns_x_y",
    ]
    assert tests["accepted_range_x"].severity == "warn"
    assert tests["accepted_range_x"].kwargs == {"min_value": 0}
    assert tests["unique_combination_of_columns_x_y"].column is None


def test_config_in_the_sql_header_is_recorded_and_validated(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        {"a": "{{ config(materialized='partitioned', partition_by=['date']) }}SELECT 1 AS x"},
    )
    assert parse_project(root).model("a").config.partition_by == ("date",)
    (root / "a.sql").write_text("{{ config(materialized='view') }}SELECT 1 AS x")
    with pytest.raises(ProjectError, match=r"a\.sql: materialized='view' is not supported"):
        parse_project(root)


def test_templates_run_sandboxed_and_strict(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"a": "SELECT {{ ''.__class__.__mro__ }} AS x"})
    with pytest.raises(ProjectError, match=r"a\.sql"):
        parse_project(root)
    (root / "a.sql").write_text("SELECT {{ partition.month }} AS x")
    with pytest.raises(ProjectError, match=r"a\.sql: template error: .*month"):
        parse_project(root)
    (root / "a.sql").write_text("SELECT {{ ref('trades' }} AS x")
    with pytest.raises(ProjectError, match=r"a\.sql: line 1"):
        parse_project(root)
