"""SQL models become Dagster assets the way dagster-dbt maps dbt models."""

from __future__ import annotations

import datetime as dt
import shutil

import dagster as dg

import dbt_like_sql as dls
from assets.sql_models import build_sql_assets, grouped_tests
from orchestration.partitions import instrument_day_partitions

PARTITIONS = instrument_day_partitions(dt.date(2024, 1, 1))


def test_every_model_is_an_asset_with_its_refs_as_deps_and_a_check_per_kind_of_test():
    manifest = dls.load_manifest()
    assets = {a.key.to_user_string(): a for a in build_sql_assets(PARTITIONS, manifest)}
    assert set(assets) == set(manifest.order)
    bars_1h = assets["bars_1h"]
    assert {k.to_user_string() for k in bars_1h.dependency_keys} == {"bars_1m"}
    checks = {key.name for key in bars_1h.check_keys}
    assert checks == {spec.test for spec in manifest.model("bars_1h").tests}
    specs = bars_1h.check_specs_by_output_name.values()
    not_null = next(spec for spec in specs if spec.name == "not_null")
    columns = [t.column for t in manifest.model("bars_1h").tests if t.test == "not_null"]
    assert not_null.description.startswith(f"not_null on {', '.join(columns)}")
    assert bars_1h.partitions_def == PARTITIONS


def test_a_kind_of_test_with_both_severities_becomes_two_checks():
    specs = [
        dls.TestSpec("accepted_range_x", "accepted_range", "x", {"min_value": 0}),
        dls.TestSpec("accepted_range_y", "accepted_range", "y", {"min_value": 0}, "warn"),
        dls.TestSpec("not_null_x", "not_null", "x", {}, "warn"),
    ]
    groups = grouped_tests(specs)
    assert {name: [s.name for s in group] for name, group in groups.items()} == {
        "accepted_range": ["accepted_range_x"],
        "accepted_range_warn": ["accepted_range_y"],
        "not_null": ["not_null_x"],
    }


def test_a_sql_file_dropped_into_the_models_folder_becomes_an_asset(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(dls.MODELS_DIR, models)
    (models / "trade_counts.sql").write_text(
        "SELECT exchange, symbol, date, COUNT(*) AS trades\n"
        "FROM {{ ref('trades') }}\nGROUP BY exchange, symbol, date\n"
    )
    (models / "trade_counts.yml").write_text(
        "version: 2\nmodels:\n  - name: trade_counts\n    description: Trades per day.\n"
        "    columns:\n      - name: trades\n        data_tests: [not_null]\n"
    )
    manifest = dls.parse_project(models)
    assets = {a.key.to_user_string(): a for a in build_sql_assets(PARTITIONS, manifest)}
    new = assets["trade_counts"]
    assert {k.to_user_string() for k in new.dependency_keys} == {"trades"}
    assert new.descriptions_by_key[dg.AssetKey("trade_counts")] == "Trades per day."
    assert len(new.check_keys) == 1
