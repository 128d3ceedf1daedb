"""SQL models become Dagster assets the way dagster-dbt maps dbt models."""

from __future__ import annotations

import datetime as dt
import shutil

import dagster as dg

import dbt_like_sql as dls
from assets.sql_models import build_sql_assets
from orchestration.partitions import instrument_day_partitions

PARTITIONS = instrument_day_partitions(dt.date(2024, 1, 1))


def test_every_model_is_an_asset_with_its_refs_as_deps_and_its_tests_as_checks():
    manifest = dls.load_manifest()
    assets = {a.key.to_user_string(): a for a in build_sql_assets(PARTITIONS, manifest)}
    assert set(assets) == set(manifest.order)
    bars_1h = assets["bars_1h"]
    assert {k.to_user_string() for k in bars_1h.dependency_keys} == {"bars_1m"}
    checks = {key.name for key in bars_1h.check_keys}
    assert checks == {spec.name for spec in manifest.model("bars_1h").tests}
    assert bars_1h.partitions_def == PARTITIONS


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
