"""The UI workflow a user follows after `make demo`, clicked through in headless Chromium.

A lake with one instrument-day from the command line, `dagster dev` (webserver + daemon) on
loopback and the simulator as Binance; then, as the README directs: the Catalog,
`trades_history`, its partitions, Materialize -> Launch backfill, Runs -> Backfills until it
succeeds, the partition's metadata and checks, the lineage, the chart on a `trades`
materialization (the CLI also builds one day), the `stream_supervisor` sensor.
Each step leaves a screenshot in tests/e2e/artifacts/ui_browser (or $MARKETLAKE_ARTIFACTS).
"""

from __future__ import annotations

import re

import polars as pl
import pytest
from playwright.sync_api import Locator, Page, expect
from support.browser import Steps, artifacts_dir, chromium_page, require_chromium
from support.dagster_dev import dagster_dev, marketlake_cli, marketlake_env

from assets.trades_history_checks import TRADES_HISTORY_CHECKS
from marketlake.lake import Lake
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator

SYMBOLS = ("BTCUSDT", "ETHUSDT")
CLI_DAY = "2024-03-01"
UI_DAY = "2024-03-02"
CHECKS = tuple(check.name for check in TRADES_HISTORY_CHECKS)
#: The asset chains the README's "In the UI" names.
README_ASSETS = (
    "trades_history", "trades", "bars_1m", "bars_1h", "bars_1d",
    "ticks_quotes", "quotes", "spread_1m", "daily_summary",
)  # fmt: skip
#: Automation the README's "In the UI" names.
README_AUTOMATION = (
    "stream_supervisor", "symbols_sensor", "daily_schedule", "history_schedule", "vacuum_schedule",
)  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(1200)  # setup, a daemon-run backfill and 16 pages on a shared machine
def test_a_user_backfills_partitions_in_the_browser_and_finds_rows_checks_lineage_and_sensor(
    tmp_path,
):
    require_chromium()  # before minutes of setup, not after
    artifacts = artifacts_dir("ui_browser")
    config = SimConfig(trades_per_day=5_000, symbols=SYMBOLS)
    with Simulator(config) as sim:
        env = marketlake_env(sim.base_url, tmp_path, SYMBOLS)
        marketlake_cli(env, "symbols", "add", *SYMBOLS)
        marketlake_cli(env, "backfill", "BTCUSDT", "--start", CLI_DAY, "--end", CLI_DAY)
        marketlake_cli(env, "build", "BTCUSDT", "--start", CLI_DAY)

        with dagster_dev(env, tmp_path / "dev.log") as url, chromium_page(artifacts) as page:
            steps = Steps(page, artifacts)
            open_the_ui(page, url, steps)
            open_the_catalog(page, steps)
            open_trades_history(page, steps)
            backfill_id = backfill_two_partitions(page, steps)
            wait_for_the_backfill_in_runs(page, steps, backfill_id)
            lake = Lake(env["MARKETLAKE_LAKE"])
            read_partition_metadata(page, steps, lake)
            read_the_checks(page, steps, lake)
            follow_the_lineage(page, steps)
            see_the_days_chart(page, steps)
            open_the_stream_supervisor(page, steps)

    assert all(path.stat().st_size > 0 for path in steps.taken), steps.taken


def named(text: str) -> re.Pattern[str]:
    """An accessible name holding `text` as a word: Dagster puts icon labels and notes around it."""
    return re.compile(rf"(^|\s){re.escape(text)}(\s|$)")


def nav(page: Page, name: str):
    """A link of Dagster's left-hand navigation."""
    return page.get_by_role("navigation").get_by_role("link", name=named(name))


def link(page: Page, name: str):
    return page.get_by_role("link", name=named(name)).first


def visible_text(page: Page, text: str):
    """Text as drawn: Dagster renders names twice, once hidden to measure truncation."""
    return page.get_by_text(text, exact=True).filter(visible=True)


def open_the_ui(page: Page, url: str, steps: Steps) -> None:
    page.goto(url)
    for name in ("Overview", "Runs", "Catalog", "Jobs", "Automation", "Lineage"):
        expect(nav(page, name)).to_be_visible()
    steps.shot("open the UI")


def open_the_catalog(page: Page, steps: Steps) -> None:
    nav(page, "Catalog").click()
    expect(page).to_have_url(re.compile(r"/assets$"))
    for asset in README_ASSETS:
        expect(link(page, asset)).to_be_visible()
    steps.shot("catalog")


def open_trades_history(page: Page, steps: Steps) -> None:
    link(page, "trades_history").click()
    expect(page.get_by_role("tab", name="Partitions")).to_be_visible()
    # The CLI's run of one instrument-day is the latest materialization, with its figures.
    expect(page.get_by_text(f"{CLI_DAY}|binance:BTCUSDT").first).to_be_visible()
    for key in ("rows", "vwap", "source", "delta_version"):
        expect(visible_text(page, key).first).to_be_visible()
    steps.shot("trades_history")

    page.get_by_role("tab", name="Partitions").click()
    expect(page.get_by_text("Materialized (1)")).to_be_visible()
    for symbol in SYMBOLS:  # the dynamic `instruments` dimension, as `symbols add` left it
        expect(visible_text(page, f"binance:{symbol}")).to_be_visible()
    steps.shot("partitions")


def backfill_two_partitions(page: Page, steps: Steps) -> str:
    """Select two instrument-days in the Materialize dialog and launch; the backfill's id."""
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize trades_history")
    expect(dialog).to_be_visible()
    dates = dialog.get_by_placeholder(re.compile(r"^ex: "))
    dates.fill(UI_DAY)
    dates.press("Enter")
    dialog.get_by_text("Select a partition or create one").click()
    for symbol in SYMBOLS:
        page.get_by_role("menuitem", name=named(f"binance:{symbol}")).click()
    page.keyboard.press("Escape")  # closes the instrument menu, not the dialog
    expect(dialog).to_contain_text(f"{len(SYMBOLS)} partitions")
    expect(dialog.get_by_placeholder(re.compile(r"^ex: "))).to_have_value(UI_DAY)
    steps.shot("select partitions")

    dialog.get_by_role("button", name="Launch backfill").click()
    created = page.get_by_text(re.compile(r"^Created backfill \w+$"))
    expect(created).to_be_visible()
    steps.shot("backfill launched")
    return created.inner_text().split()[-1]


def wait_for_the_backfill_in_runs(page: Page, steps: Steps, backfill_id: str) -> None:
    nav(page, "Runs").click()
    page.get_by_role("tab", name="Backfills").click()
    # The list is no table: its entry is the innermost element with the backfill's link
    # and its target.
    row = (
        page.locator("div")
        .filter(has=link(page, backfill_id))
        .filter(has_text="trades_history")
        .last
    )
    expect(row).to_contain_text(f"{len(SYMBOLS)} partitions")
    # The list refreshes itself every few seconds; the daemon plans the backfill, launches
    # one run per symbol (batched along dates) and the runs write and check the days.
    expect(row).to_contain_text("Success", timeout=600_000)
    steps.shot("runs backfills")

    link(page, backfill_id).click()
    expect(page.get_by_text("Succeeded", exact=True).first).to_be_visible()
    expect(page.get_by_text("100% completed")).to_be_visible()
    for symbol in SYMBOLS:
        expect(page.get_by_text(f"{UI_DAY}|binance:{symbol}").first).to_be_visible()
    steps.shot("backfill")


def read_partition_metadata(page: Page, steps: Steps, lake: Lake) -> None:
    nav(page, "Catalog").click()
    link(page, "trades_history").click()
    page.get_by_role("tab", name="Partitions").click()
    expect(page.get_by_text(f"Materialized ({1 + len(SYMBOLS)})")).to_be_visible()

    def select(day: str, symbol: str) -> None:
        page.get_by_placeholder("Filter by date").fill(day)
        visible_text(page, day).click()
        visible_text(page, f"binance:{symbol}").click()
        expect(page.get_by_text(f"{day}|binance:{symbol}").first).to_be_visible()
        expect(page.get_by_text("Materialized", exact=True).last).to_be_visible()

    def own_figures(day: str, symbol: str) -> None:
        select(day, symbol)
        rows = rows_in_lake(lake, day, symbol)
        metadata = page.get_by_role("row").filter(has=visible_text(page, "rows"))
        expect(metadata.first).to_contain_text(str(rows))
        for key in ("first_trade_id", "last_trade_id", "vwap", "gaps_found", "delta_version"):
            expect(visible_text(page, key).first).to_be_visible()

    # Each instrument-day of a batched backfill run carries its own figures, the rows the
    # lake holds among them, as a single-partition run (the CLI's) does.
    for symbol in SYMBOLS:
        own_figures(UI_DAY, symbol)
    expect(page.get_by_text("per_partition")).to_have_count(0)
    steps.shot("partition metadata backfill")
    own_figures(CLI_DAY, "BTCUSDT")
    steps.shot("partition metadata cli")


def rows_in_lake(lake: Lake, day: str, symbol: str) -> int:
    return (
        lake.scan("trades_history")
        .filter(pl.col("symbol") == symbol, pl.col("date").cast(pl.String) == day)
        .select(pl.len())
        .collect()
        .item()
    )


def read_the_checks(page: Page, steps: Steps, lake: Lake) -> None:
    page.get_by_role("tab", name="Checks").click()
    expect(page.get_by_text(f"Checks ({len(CHECKS)})")).to_be_visible()
    for check in CHECKS:
        entry = (
            page.locator("div").filter(has=visible_text(page, check)).filter(has_text="Succeeded")
        )
        expect(entry.last).to_be_visible()
    steps.shot("checks")

    # One check's result for one instrument-day of the batched backfill run.
    visible_text(page, "trade_ids_contiguous").click()
    page.get_by_role("tab", name="Partitions").last.click()  # the check's, not the asset's
    page.get_by_placeholder("Filter by date").fill(UI_DAY)
    visible_text(page, UI_DAY).click()
    visible_text(page, "binance:ETHUSDT").click()
    expect(visible_text(page, f"{UI_DAY}|binance:ETHUSDT")).to_be_visible()
    expect(visible_text(page, "Passed")).to_be_visible()
    checked = page.get_by_role("row").filter(has=visible_text(page, "rows_checked"))
    expect(checked).to_contain_text(str(rows_in_lake(lake, UI_DAY, "ETHUSDT")))
    steps.shot("check of one partition")


def follow_the_lineage(page: Page, steps: Steps) -> None:
    nav(page, "Lineage").click()
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for group in ("history", "daily", "marts", "live"):
        expect(visible_text(page, group).first).to_be_visible()
    steps.shot("global asset lineage")

    nav(page, "Catalog").click()
    link(page, "trades_history").click()
    page.get_by_role("tab", name="Lineage").click()
    # trades_history feeds trades; its node shows the checks that passed.
    expect(visible_text(page, "trades").first).to_be_visible()
    expect(page.get_by_text(f"{len(CHECKS)} / {len(CHECKS)} Passed")).to_be_visible()
    steps.shot("trades_history lineage")


def see_the_days_chart(page: Page, steps: Steps) -> None:
    """`trades`' latest materialization: its sparkline in the metadata table, its chart
    behind "[Show Markdown]", both drawn from an SVG data URI."""
    nav(page, "Catalog").click()
    link(page, "trades").click()
    expect(page.get_by_text(f"{CLI_DAY}|binance:BTCUSDT").first).to_be_visible()
    trend = page.get_by_role("row").filter(has=visible_text(page, "trend")).locator("img")
    expect(trend).to_have_attribute("src", re.compile(r"^data:image/svg\+xml;base64,"))
    assert natural_width(trend) > 0
    for figure in ("close", "vwap", "high", "low", "trades"):
        expect(visible_text(page, figure).first).to_be_visible()
    steps.shot("trades trend")

    chart_row = page.get_by_role("row").filter(has=visible_text(page, "chart"))
    chart_row.get_by_text("[Show Markdown]").click()
    chart = page.get_by_role("dialog").get_by_role("img", name="close, running VWAP and volume")
    expect(chart).to_have_attribute("src", re.compile(r"^data:image/svg\+xml;base64,"))
    assert natural_width(chart) > 0
    steps.shot("trades chart")
    page.get_by_role("dialog").get_by_role("button", name="Close").click()


def natural_width(image: Locator) -> int:
    """The width the browser decoded the image at: 0 when it could not draw it."""
    image.evaluate("img => img.decode()")  # waits until decoded, rejects if it cannot be
    return image.evaluate("img => img.naturalWidth")


def open_the_stream_supervisor(page: Page, steps: Steps) -> None:
    nav(page, "Automation").click()
    for name in README_AUTOMATION:
        expect(link(page, name)).to_be_visible()
    steps.shot("automation")

    link(page, "stream_supervisor").click()
    expect(
        page.get_by_text(re.compile(r"^Keeps exactly one stream_ticks run alive"))
    ).to_be_visible()
    expect(link(page, "stream_ticks")).to_be_visible()
    # The switch a user turns on: off until someone does (the README says so).
    expect(
        page.get_by_role("row").filter(has_text="Running").get_by_role("checkbox")
    ).not_to_be_checked()
    steps.shot("stream_supervisor sensor")
