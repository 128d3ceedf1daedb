"""Macros: `{% macro %}` files shared by every model, and every mistake in one naming its file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from dbt_like_sql import Model, ProjectError, load_manifest, parse_project, run_model
from dbt_like_sql.memory import MemoryStore

SOURCES_YML = "version: 2\nsources:\n  - name: lake\n    tables:\n      - name: trades\n"
DAY = dt.date(2024, 12, 31)
PARTITION = {"exchange": "binance", "symbol": "BTCUSDT", "date": DAY}


def write_project(root: Path, models: dict[str, str], macros: dict[str, str]) -> Path:
    """`root/models` and `root/macros`, dbt's layout; returns the models folder."""
    for folder, files in (("models", models), ("macros", macros)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (root / folder / f"{name}.sql").write_text(text)
    (root / "models" / "schema.yml").write_text(SOURCES_YML)
    return root / "models"


def test_a_model_calls_a_macro_and_runs_what_it_expands_to(tmp_path: Path) -> None:
    models = write_project(
        tmp_path,
        {
            "notional": "SELECT exchange, symbol, date, {{ times('price', 'qty') }} AS notional\n"
            "FROM {{ ref('trades') }}"
        },
        {"arithmetic": "{% macro times(a, b) %}{{ a }} * {{ b }}{% endmacro %}\n"},
    )
    manifest = parse_project(models, macros_dir=tmp_path / "macros")
    model = manifest.model("notional")
    assert "price * qty AS notional" in model.compiled_sql
    trades = pl.DataFrame(
        {"exchange": "binance", "symbol": "BTCUSDT", "date": DAY, "price": [2.0], "qty": [3.0]}
    )
    rows = run_model(manifest, "notional", MemoryStore({"trades": trades}), PARTITION)
    assert rows["notional"].to_list() == [6.0]


def test_a_ref_inside_a_macro_is_a_dependency_of_the_model_calling_it(tmp_path: Path) -> None:
    models = write_project(
        tmp_path,
        {"a": "SELECT 1 AS x FROM {{ ref('trades') }}", "b": "{{ everything_from('a') }}"},
        {
            "select": "{% macro everything_from(name) %}"
            "SELECT * FROM {{ quoted(ref(name)) }}{% endmacro %}\n",
            "quote": "{% macro quoted(table) %}{{ table }}{% endmacro %}\n",  # another file
        },
    )
    manifest = parse_project(models, macros_dir=tmp_path / "macros")
    assert manifest.parents("b") == ("a",)
    assert manifest.order == ("a", "b")
    assert manifest.model("b").compiled_sql.strip() == "SELECT * FROM a"


def test_an_undefined_macro_is_refused_at_parse_naming_the_model_file(tmp_path: Path) -> None:
    models = write_project(
        tmp_path,
        {"m": "SELECT 1 AS x\nFROM {{ ref('trades') }}\nWHERE {{ tims('price', 'qty') }} > 0"},
        {"arithmetic": "{% macro times(a, b) %}{{ a }} * {{ b }}{% endmacro %}\n"},
    )
    with pytest.raises(ProjectError) as caught:
        parse_project(models, macros_dir=tmp_path / "macros")
    assert caught.value.path == models / "m.sql"
    message = str(caught.value)
    assert "line 3" in message and "'tims' is undefined" in message
    assert "macros: times" in message


def test_a_macro_with_a_syntax_error_is_refused_at_parse_naming_its_file_and_line(
    tmp_path: Path,
) -> None:
    macros = {"broken": "{% macro times(a, b) %}\n{{ a }} * {{ b }\n{% endmacro %}\n"}
    models = write_project(tmp_path, {"m": "SELECT 1 AS x"}, macros)
    with pytest.raises(ProjectError) as caught:
        parse_project(models, macros_dir=tmp_path / "macros")
    assert caught.value.path == tmp_path / "macros" / "broken.sql"
    assert "broken.sql: line 2" in str(caught.value)


def test_a_mistake_inside_a_macro_body_is_reported_at_the_macro(tmp_path: Path) -> None:
    macros = {"m": "{% macro rollup(grain) %}\nDATE_TRUNC('{{ grian }}', ts)\n{% endmacro %}\n"}
    models = write_project(tmp_path, {"bars": "SELECT {{ rollup('hour') }} AS t"}, macros)
    with pytest.raises(ProjectError) as caught:
        parse_project(models, macros_dir=tmp_path / "macros")
    assert caught.value.path == tmp_path / "macros" / "m.sql"
    assert "line 2" in str(caught.value) and "'grian' is undefined" in str(caught.value)


def test_a_macro_defined_twice_is_refused_naming_both_files(tmp_path: Path) -> None:
    macro = "{% macro times(a, b) %}{{ a }} * {{ b }}{% endmacro %}\n"
    models = write_project(tmp_path, {"m": "SELECT 1 AS x"}, {"a": macro, "b": macro})
    with pytest.raises(ProjectError) as caught:
        parse_project(models, macros_dir=tmp_path / "macros")
    assert caught.value.path.name == "b.sql"
    assert "'times' is already defined in" in str(caught.value) and "a.sql" in str(caught.value)


def test_a_macro_may_not_take_the_name_of_a_model_function(tmp_path: Path) -> None:
    macros = {"a": "{% macro ref(name) %}{{ name }}{% endmacro %}\n"}
    models = write_project(tmp_path, {"m": "SELECT 1 AS x"}, macros)
    with pytest.raises(ProjectError, match=r"a\.sql: line 1: macro 'ref' is already defined"):
        parse_project(models, macros_dir=tmp_path / "macros")


def test_a_macros_file_holds_only_macro_definitions(tmp_path: Path) -> None:
    macros = {"a": "{# fine #}\n{% macro one() %}1{% endmacro %}\nSELECT 2\n"}
    models = write_project(tmp_path, {"m": "SELECT {{ one() }} AS x"}, macros)
    with pytest.raises(ProjectError, match=r"a\.sql: line 2: a macros file holds only"):
        parse_project(models, macros_dir=tmp_path / "macros")


def test_hour_and_day_bars_are_one_rollup_at_two_grains() -> None:
    manifest = load_manifest()
    hour, day = manifest.model("bars_1h"), manifest.model("bars_1d")
    for model in (hour, day):
        assert "rollup_bars(ref('bars_1m')" in model.raw_sql
        assert "GROUP BY" not in model.raw_sql
        assert model.refs == ("bars_1m",)

    def body(model: Model) -> str:  # the compiled SQL without the model's own comments
        lines = model.compiled_sql.splitlines()
        return "\n".join(line for line in lines if not line.startswith("--"))

    assert body(hour).replace("'hour'", "'day'") == body(day)


def test_a_macros_folder_inside_the_models_folder_holds_no_models(tmp_path: Path) -> None:
    models = write_project(tmp_path, {"m": "SELECT {{ one() }} AS x"}, {})
    (models / "macros").mkdir()
    (models / "macros" / "one.sql").write_text("{% macro one() %}1{% endmacro %}\n")
    manifest = parse_project(models, macros_dir=models / "macros")
    assert manifest.order == ("m",)
    assert manifest.model("m").compiled_sql.strip() == "SELECT 1 AS x"
