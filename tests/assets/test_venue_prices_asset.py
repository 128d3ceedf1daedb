"""`venue_prices_1m` through Dagster: four venues' trades and quotes in a lake, one day built."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from assets.venue_prices import build_venue_prices
from marketlake import schemas
from marketlake.lake import Lake
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from orchestration.definitions import build_definitions
from orchestration.partitions import instrument_day_partitions
from orchestration.settings import Settings

DAY = dt.date(2024, 3, 1)
NEXT = DAY + dt.timedelta(days=1)
INGESTED = dt.datetime(2024, 3, 3, tzinfo=dt.UTC)

#: (exchange, symbol, day, hh:mm:ss, price, qty): Deribit's qty is USD, as its feed lands it.
TRADES = [
    ("binance", "BTCUSDT", DAY, "00:00:05", 100.0, 1.0),
    ("binance", "BTCUSDT", DAY, "00:00:45", 100.4, 1.0),
    ("coinbase", "BTC-USD", DAY, "00:00:10", 101.0, 2.0),
    ("okx", "BTC-USDT", DAY, "00:00:20", 100.5, 1.0),
    ("okx", "BTC-USDT", DAY, "00:01:20", 100.7, 1.0),
    ("coinbase", "BTC-USD", DAY, "00:01:30", 100.8, 1.0),
    ("deribit", "BTC-PERPETUAL", DAY, "00:00:30", 100.6, 50_300.0),
    ("okx", "BTC-USDT-SWAP", DAY, "00:00:40", 100.5, 7.0),
    ("binance", "BTCUSDT", NEXT, "00:00:05", 90.0, 1.0),  # another day: never read
]
#: (exchange, symbol, hh:mm:ss, bid, ask), all on DAY.
QUOTES = [
    ("binance", "BTCUSDT", "00:00:50", 100.3, 100.5),
    ("okx", "BTC-USDT", "00:00:55", 100.5, 100.6),
    ("deribit", "BTC-PERPETUAL", "00:00:31", 100.5, 101.0),
]


def write_trades(lake: Lake, rows: list[tuple]) -> None:
    frame = pl.DataFrame(
        [
            (e, s, d, i, p, q, p * q, dt.datetime.fromisoformat(f"{d}T{t}+00:00"), False, "ws",
             INGESTED)
            for i, (e, s, d, t, p, q) in enumerate(rows)
        ],
        schema=list(schemas.TRADES), orient="row",
    )  # fmt: skip
    for (exchange, symbol, date), part in frame.group_by(["exchange", "symbol", "date"]):
        lake.replace_partition(
            "trades",
            schemas.conform(part, schemas.TRADES),
            {"exchange": exchange, "symbol": symbol, "date": date},
            schemas.MARKET_PARTITION_COLUMNS,
        )


def write_quotes(lake: Lake, rows: list[tuple]) -> None:
    frame = pl.DataFrame(
        [
            (e, s, DAY, ts := dt.datetime.fromisoformat(f"{DAY}T{t}+00:00"), ts, i, b, 1.0, a, 1.0)
            for i, (e, s, t, b, a) in enumerate(rows)
        ],
        schema=list(schemas.QUOTES), orient="row",
    )  # fmt: skip
    for (exchange, symbol, date), part in frame.group_by(["exchange", "symbol", "date"]):
        lake.replace_partition(
            "quotes",
            schemas.conform(part, schemas.QUOTES),
            {"exchange": exchange, "symbol": symbol, "date": date},
            schemas.MARKET_PARTITION_COLUMNS,
        )


@pytest.fixture
def lake(tmp_path) -> Lake:
    lake = Lake(str(tmp_path / "lake"))
    write_trades(lake, TRADES)
    write_quotes(lake, QUOTES)
    return lake


def build(lake: Lake, day: dt.date, lists: dict | None = None) -> dg.ExecuteInProcessResult:
    asset = build_venue_prices(instrument_day_partitions(DAY - dt.timedelta(days=30)))
    config = (
        {"ops": {"venue_prices_1m": {"config": {"instrument_lists": lists}}}} if lists else None
    )
    return dg.materialize(
        [asset], partition_key=day.isoformat(), resources={"lake": lake}, run_config=config,
        raise_on_error=False,
    )  # fmt: skip


#: A Delta scan keeps no row order: tests read the table in the order it was written.
SORTED = ["instrument", "minute", "exchange", "symbol"]


def table(lake: Lake, day: dt.date = DAY) -> pl.DataFrame:
    return lake.scan("venue_prices_1m", date=day).collect().sort(SORTED)


def test_a_day_puts_four_venues_side_by_side_with_the_largest_gap_named(lake):
    result = build(lake, DAY)
    assert result.success
    rows = table(lake)
    spot = rows.filter(pl.col("instrument") == "BTC-USD spot", pl.col("minute").dt.minute() == 0)
    assert spot.select("exchange", "vwap", "mid").rows() == [
        ("binance", pytest.approx(100.2), pytest.approx(100.4)),
        ("coinbase", 101.0, None),
        ("okx", 100.5, pytest.approx(100.55)),
    ]
    assert spot["gap_bps"].unique().to_list() == [pytest.approx(0.8 / 100.6 * 10_000)]
    assert spot["gap_low_venue"].unique().to_list() == ["binance:BTCUSDT"]
    assert spot["gap_high_venue"].unique().to_list() == ["coinbase:BTC-USD"]
    perpetual = rows.filter(pl.col("instrument") == "BTC-USD perpetual")
    assert perpetual.select("exchange", "symbol", "base_volume").rows() == [
        ("deribit", "BTC-PERPETUAL", pytest.approx(500.0)),  # 50,300 USD at 100.6
        ("okx", "BTC-USDT-SWAP", None),  # contracts of a size only OKX's list says
    ]
    assert perpetual["gap_bps"].unique().to_list() == [pytest.approx(0.1 / 100.55 * 10_000)]
    assert rows["date"].unique().to_list() == [DAY]
    assert 90.0 not in rows["vwap"].to_list()  # the next day's trade stays out

    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "one_row_per_instrument_minute_venue": True,
        "gap_bps_non_negative": True,
        "gap_names_two_venues": True,
        "prices_positive": True,
        "minutes_in_partition_day": True,
        "gap_under_50_bps": False,  # 79.5 bps between Binance and Coinbase: worth a look
    }
    (event,) = result.get_asset_materialization_events()
    meta = event.step_materialization_data.materialization.metadata
    assert meta["venues"].value == [
        "binance:BTCUSDT", "coinbase:BTC-USD", "deribit:BTC-PERPETUAL", "okx:BTC-USDT",
        "okx:BTC-USDT-SWAP",
    ]  # fmt: skip
    assert meta["instruments"].value == ["BTC-USD perpetual", "BTC-USD spot"]


def test_rebuilding_a_day_replaces_that_day_and_leaves_other_days_untouched(lake):
    assert build(lake, DAY).success
    assert build(lake, NEXT).success
    next_before = table(lake, NEXT)
    write_trades(lake, [("coinbase", "BTC-USD", DAY, "00:00:10", 100.2, 2.0)])
    assert build(lake, DAY).success
    spot = table(lake).filter(pl.col("instrument") == "BTC-USD spot")
    first_minute = spot.filter(pl.col("minute").dt.minute() == 0)
    assert first_minute.filter(pl.col("exchange") == "coinbase")["vwap"].to_list() == [100.2]
    assert first_minute["gap_high_venue"].unique().to_list() == ["okx:BTC-USDT"]
    assert table(lake, NEXT).equals(next_before)
    assert next_before.select("exchange", "vwap").rows() == [("binance", 90.0)]


def test_a_day_refused_by_its_checks_keeps_its_previous_rows(lake):
    assert build(lake, DAY).success
    before = table(lake)
    write_trades(lake, [("okx", "BTC-USDT", DAY, "00:00:20", -1.0, 1.0)])
    result = build(lake, DAY)
    assert not result.success
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert "prices_positive" in failed
    assert table(lake).equals(before)


def test_the_schedule_asks_for_yesterdays_day_after_the_build_and_after_the_archive_refresh():
    defs = build_definitions(Settings())
    schedule = defs.resolve_schedule_def("venue_prices_schedule")
    job = defs.resolve_job_def(schedule.job_name)
    assert job.asset_layer.selected_asset_keys == {dg.AssetKey("venue_prices_1m")}
    for hour in (1, 7):
        scheduled = dt.datetime(2024, 3, 2, hour, tzinfo=dt.UTC)
        with dg.DagsterInstance.ephemeral() as instance:
            context = dg.build_schedule_context(
                instance, scheduled_execution_time=scheduled,
                repository_def=defs.get_repository_def(),
            )  # fmt: skip
            (request,) = schedule.evaluate_tick(context).run_requests
        assert request.partition_key == "2024-03-01"


def test_fetched_instrument_lists_give_contract_sizes_and_with_them_base_volume(lake):
    universe = ("BTC-USDT", "BTC-USDT-SWAP", "BTC-PERPETUAL")
    with Simulator(SimConfig(trades_per_day=1_000, symbols=universe)) as sim:
        result = build(lake, DAY, {"okx": sim.base_url, "deribit": sim.base_url})
    assert result.success
    perpetual = table(lake).filter(pl.col("instrument") == "BTC-USD perpetual")
    assert perpetual.select("symbol", "base_volume").rows() == [
        ("BTC-PERPETUAL", pytest.approx(500.0)),
        ("BTC-USDT-SWAP", pytest.approx(0.07)),  # 7 contracts of 0.01 BTC, from OKX's list
    ]
    (event,) = result.get_asset_materialization_events()
    meta = event.step_materialization_data.materialization.metadata
    assert meta["from_instrument_lists"].value == [
        "deribit:BTC-PERPETUAL", "okx:BTC-USDT", "okx:BTC-USDT-SWAP",
    ]  # fmt: skip


def test_an_instrument_list_that_cant_be_fetched_fails_the_day_naming_the_url(lake):
    assert build(lake, DAY).success
    before = table(lake)
    with Simulator(SimConfig(trades_per_day=1_000, symbols=("BTC-USDT",))) as sim:
        result = build(lake, DAY, {"okx": f"{sim.base_url}/missing"})
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "/missing/api/v5/public/instruments" in str(failure.step_failure_data.error)
    assert table(lake).equals(before)
