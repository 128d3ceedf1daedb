"""`marketlake vacuum` clears the files a killed writer left, and nothing a table needs."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl


def marketlake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MARKETLAKE_", "DAGSTER_"))}
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_vacuum_deletes_old_orphan_files_and_keeps_the_tables_rows(tmp_path):
    table = tmp_path / "lake" / "trades_history"
    rows = pl.DataFrame(
        {"exchange": ["binance"] * 2, "symbol": ["BTCUSDT"] * 2,
         "date": [dt.date(2024, 3, 1)] * 2, "trade_id": [1, 2]}
    )  # fmt: skip
    rows.write_delta(str(table), delta_write_options={"partition_by": ["exchange", "symbol"]})
    folder = next(table.glob("exchange=*/symbol=*"))
    # what a writer killed between writing its files and committing leaves behind
    old_orphan, new_orphan = folder / "part-old-orphan.parquet", folder / "part-new.parquet"
    rows.write_parquet(old_orphan)
    rows.write_parquet(new_orphan)
    ten_days_ago = time.time() - 10 * 86_400
    os.utime(old_orphan, (ten_days_ago, ten_days_ago))

    listed = marketlake("vacuum", "--dry-run", "--lake", "lake", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "trades_history: would delete 1 file(s)" in listed.stdout
    assert "part-old-orphan.parquet" in listed.stdout
    assert old_orphan.exists()

    vacuumed = marketlake("vacuum", "--lake", "lake", cwd=tmp_path)
    assert vacuumed.returncode == 0, vacuumed.stderr
    assert "trades_history: deleted 1 file(s)" in vacuumed.stdout
    assert not old_orphan.exists()
    assert new_orphan.exists()  # younger than the retention: maybe a write in progress
    assert pl.read_delta(str(table)).sort("trade_id").equals(rows.sort("trade_id"))
