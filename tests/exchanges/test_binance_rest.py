"""The Binance REST client: weight budget, retries, load modes, id search.

Layers: the budget and the search algorithm alone (no I/O); the client against a tiny
scripted HTTP server on loopback for misbehaviour the simulator doesn't produce (timeouts,
dropped connections, 418); the client against the local exchange simulator for rate-limit
storms, 5xx, the from-date search on a 1M-trades day, reverse mode and exact gap fills.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest
from support.scripted_server import TRADES_BODY, Reply, ScriptedServer

from marketlake.exchanges.binance.ratelimit import WeightBudget, backoff_delay, depth_weight
from marketlake.exchanges.binance.rest import BinanceRest, to_epoch_ms
from marketlake.exchanges.binance.search import TradeIdSearch
from marketlake.exchanges.errors import RestError
from marketlake.schemas import RAW_TRADES, UTC_US, InvalidSymbolError
from marketlake.simulator import data
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator

UTC = dt.UTC
SYMBOL = "BTCUSDT"


def midnight(date: dt.date) -> dt.datetime:
    return dt.datetime.combine(date, dt.time(), tzinfo=UTC)


# --- the weight budget ---------------------------------------------------------------------------


def fresh_window(window_seconds: float) -> None:
    """Sleep to just after a window boundary so a test's requests share one window."""
    time.sleep(window_seconds - time.time() % window_seconds + 0.1)


def test_requests_within_the_budget_do_not_wait():
    budget = WeightBudget(100, window_seconds=3600, max_fraction=1.0)
    waits = [budget.acquire(25).waited for _ in range(4)]
    assert max(waits) < 0.01
    assert budget.used == 100


def test_a_request_that_would_exceed_the_budget_waits_for_the_next_window():
    budget = WeightBudget(100, window_seconds=1.0, max_fraction=0.9, grace_seconds=0.05)
    fresh_window(1.0)
    first = budget.acquire(50)
    budget.settle(first, None)
    started = time.time()
    second = budget.acquire(50)  # 100 > 90: must wait for the window to roll
    assert second.waited > 0.2
    assert second.window == first.window + 1
    assert time.time() - started >= 0.2


def test_the_servers_used_weight_overrides_the_local_count():
    budget = WeightBudget(100, window_seconds=1.0, max_fraction=1.0, grace_seconds=0.05)
    fresh_window(1.0)
    reservation = budget.acquire(1)
    budget.settle(reservation, 95)  # another process on the same IP used the rest
    assert budget.used == 95
    assert budget.acquire(10).waited > 0.2


def test_a_lower_count_from_the_servers_next_window_frees_no_weight_in_ours():
    """The server rolls at the boundary, the budget only after its grace: in between, a
    header from the server's new window must not reopen the budget's old one."""
    now = [1000.98]
    budget = WeightBudget(100, window_seconds=1.0, grace_seconds=0.05, clock=lambda: now[0])
    for used in (30, 60):
        budget.settle(budget.acquire(30), used)
    in_flight = budget.acquire(25)
    now[0] = 1001.02  # the server's boundary passed; the budget's grace has not
    budget.settle(in_flight, 25)  # the server counted it in its new window
    assert in_flight.window == budget.acquire(0).window
    assert budget.used == 85


def test_a_retry_after_block_holds_back_every_client_sharing_the_budget():
    budget = WeightBudget(6000, window_seconds=60)
    budget.block_for(0.4)
    started = time.monotonic()
    waits: list[float] = []
    threads = [
        threading.Thread(target=lambda: waits.append(budget.acquire(1).waited)) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started >= 0.39
    assert min(waits) >= 0.35


def test_concurrent_clients_never_reserve_more_than_the_usable_weight_per_window():
    budget = WeightBudget(100, window_seconds=0.5, max_fraction=0.8, grace_seconds=0.02)
    per_window: dict[int, int] = {}
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(6):
            reservation = budget.acquire(10)
            with lock:
                per_window[reservation.window] = per_window.get(reservation.window, 0) + 10
            budget.settle(reservation, None)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(per_window.values()) == 300
    assert max(per_window.values()) <= 80


def test_a_response_from_the_previous_window_counts_in_the_new_one():
    now = [1000.0]
    budget = WeightBudget(100, window_seconds=10, grace_seconds=0.0, clock=lambda: now[0])
    reservation = budget.acquire(25)
    now[0] = 1010.5  # the response arrives after the boundary
    budget.settle(reservation, 25)  # the header can't tell which window counted it
    assert budget.used == 25


def test_a_request_heavier_than_the_whole_budget_is_refused():
    with pytest.raises(ValueError, match="exceeds"):
        WeightBudget(20).acquire(25)


def test_backoff_is_capped_exponential_with_full_jitter():
    delays = [backoff_delay(n, base=0.25, cap=2.0) for n in range(10) for _ in range(50)]
    assert min(delays) >= 0.0 and max(delays) <= 2.0
    assert max(backoff_delay(0, base=0.25, cap=2.0) for _ in range(100)) <= 0.25
    assert depth_weight(100) == 5 and depth_weight(1000) == 50 and depth_weight(5000) == 250


# --- the id search, on an uneven market (no I/O) ----------------------------------------------


class UnevenHistory:
    """historicalTrades over a synthetic market whose intensity varies 300x between days,
    with bursts of trades sharing one millisecond and a few holes in the ids. Stands in for
    the client in `TradeIdSearch` so the algorithm is tested on data the simulator (an even
    N trades per day) can't produce."""

    def __init__(self, seed: int, days: int = 400, holes: bool = True) -> None:
        rng = np.random.default_rng(seed)
        start_ms = to_epoch_ms(dt.datetime(2021, 1, 1, tzinfo=UTC))
        counts = np.maximum(1, (rng.lognormal(7.5, 1.4, days)).astype(np.int64))
        times = []
        for day, count in enumerate(counts):
            day_ms = start_ms + day * 86_400_000
            # Half the trades in a short burst: a quiet day with a frenzy at a random hour.
            burst = day_ms + int(rng.integers(0, 86_000_000))
            quiet = rng.integers(0, 86_400_000, count - count // 2)
            loud = burst + rng.integers(0, 20_000, count // 2) // 7 * 7  # clustered ms
            times.append(np.sort(np.concatenate([day_ms + quiet, loud])))
        self.times = np.concatenate(times)
        self.ids = 10_000_000 + np.arange(len(self.times), dtype=np.int64)
        if holes:
            keep = np.ones(len(self.ids), dtype=bool)
            for at in rng.integers(0, len(self.ids), 5):
                keep[at : at + int(rng.integers(1, 3000))] = False
            self.ids, self.times = self.ids[keep], self.times[keep]
        self.start_ms = start_ms
        self.requests = 0

    def historical_trades(self, symbol: str, from_id: int | None = None, limit: int = 1000):
        self.requests += 1
        if from_id is None:
            lo = max(0, len(self.ids) - limit)
        else:
            lo = int(np.searchsorted(self.ids, from_id, side="left"))
        hi = min(lo + limit, len(self.ids))
        n = hi - lo
        return pl.DataFrame(
            {
                "trade_id": self.ids[lo:hi],
                "price": np.ones(n),
                "qty": np.ones(n),
                "quote_qty": np.ones(n),
                "ts": self.times[lo:hi] * 1000,
                "is_buyer_maker": np.zeros(n, dtype=bool),
            }
        ).with_columns(pl.col("ts").cast(UTC_US))

    def truth(self, target_ms: int) -> int:
        index = int(np.searchsorted(self.times, target_ms, side="left"))
        return int(self.ids[index]) if index < len(self.ids) else int(self.ids[-1]) + 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_id_search_is_exact_and_cheap_on_an_uneven_market(seed: int):
    market = UnevenHistory(seed)
    rng = np.random.default_rng(seed + 100)
    span = int(market.times[-1] - market.times[0])
    targets = [
        int(market.times[0]) + int(x) for x in rng.integers(-86_400_000, span + 86_400_000, 60)
    ]
    targets += [market.start_ms + d * 86_400_000 for d in range(0, 400, 37)]  # midnights
    targets += [int(t) for t in market.times[rng.integers(0, len(market.times), 20)]]  # exact hits
    worst = 0
    for target in targets:
        before = market.requests
        assert TradeIdSearch(market, SYMBOL).first_id_at(target) == market.truth(target), target
        worst = max(worst, market.requests - before)
    assert worst < 40


def test_the_id_search_answers_beyond_both_ends_of_history():
    market = UnevenHistory(5, days=30, holes=False)
    assert TradeIdSearch(market, SYMBOL).first_id_at(0) == market.ids[0]
    after = int(market.times[-1]) + 1
    assert TradeIdSearch(market, SYMBOL).first_id_at(after) == market.ids[-1] + 1


def test_one_search_reuses_its_pages_for_the_second_boundary_of_a_day():
    market = UnevenHistory(7, holes=False)
    search = TradeIdSearch(market, SYMBOL)
    search.first_id_at(market.start_ms + 200 * 86_400_000)
    first_cost = market.requests
    search.first_id_at(market.start_ms + 201 * 86_400_000)
    assert market.requests - first_cost < first_cost


# --- a scripted misbehaving server (support.scripted_server) ------------------------------------


def quick_client(base_url: str, **kwargs) -> BinanceRest:
    kwargs.setdefault("backoff_base", 0.01)
    kwargs.setdefault("backoff_cap", 0.05)
    return BinanceRest(base_url, **kwargs)


def test_5xx_answers_are_retried_until_the_request_succeeds():
    script = [Reply(503), Reply(502), Reply(200, TRADES_BODY)]
    with ScriptedServer(script) as server, quick_client(server.base_url) as rest:
        trades = rest.historical_trades(SYMBOL, from_id=7, limit=1)
    assert trades["trade_id"].to_list() == [7]
    assert (rest.stats.requests, rest.stats.retries, rest.stats.http_5xx) == (3, 2, 2)


def test_a_persistent_5xx_raises_a_rest_error_naming_endpoint_params_and_status():
    with (
        ScriptedServer(lambda _: Reply(503, b"overloaded")) as server,
        quick_client(server.base_url, max_retries=3) as rest,
        pytest.raises(RestError) as caught,
    ):
        rest.historical_trades(SYMBOL, from_id=42)
    error = caught.value
    assert error.status == 503 and error.endpoint == "/api/v3/historicalTrades"
    assert error.params["fromId"] == 42
    assert "/api/v3/historicalTrades" in str(error) and "'fromId': 42" in str(error)
    assert "last status 503" in str(error) and rest.stats.requests == 4


def test_a_binance_error_is_raised_at_once_with_its_code_and_message():
    body = b'{"code":-1121,"msg":"Invalid symbol."}'
    with (
        ScriptedServer(lambda _: Reply(400, body)) as server,
        quick_client(server.base_url) as rest,
        pytest.raises(RestError) as caught,
    ):
        rest.historical_trades("NOSUCHCOIN")
    assert (caught.value.status, caught.value.code, caught.value.msg) == (
        400,
        -1121,
        "Invalid symbol.",
    )
    assert rest.stats.requests == 1 and rest.stats.retries == 0


def test_a_symbol_that_cannot_be_one_never_reaches_the_network():
    with ScriptedServer([]) as server, quick_client(server.base_url) as rest:
        with pytest.raises(InvalidSymbolError):
            rest.historical_trades("BTC/USDT&x=1")
        assert server.seen == []


@pytest.mark.parametrize("status", [429, 418])
def test_retry_after_is_honoured_before_anything_else_is_sent(status: int):
    script = [
        Reply(status, b'{"code":-1003,"msg":"Too many requests"}', {"Retry-After": "1"}),
        Reply(200, TRADES_BODY),
        Reply(200, TRADES_BODY),
    ]
    with ScriptedServer(script) as server:
        budget = WeightBudget(6000)
        first, second = (
            quick_client(server.base_url, budget=budget),
            quick_client(server.base_url, budget=budget),
        )
        first.historical_trades(SYMBOL, limit=1)
        second.historical_trades(SYMBOL, limit=1)  # shares the budget: must wait too
    times = [t for t, _ in server.seen]
    assert times[1] - times[0] >= 0.95 and times[2] - times[0] >= 0.95
    assert getattr(first.stats, f"http_{status}") == 1 and first.stats.sleeps >= 1


def test_timeouts_and_dropped_connections_are_retried():
    script = [Reply(200, TRADES_BODY, delay=1.0), Reply(drop=True), Reply(200, TRADES_BODY)]
    with ScriptedServer(script) as server, quick_client(server.base_url, timeout=0.3) as rest:
        assert rest.historical_trades(SYMBOL, limit=1).height == 1
    assert rest.stats.transport_errors == 2 and rest.stats.retries == 2


def test_the_used_weight_header_slows_down_every_client_on_the_budget():
    heavy = {"X-MBX-USED-WEIGHT-1M": "95"}
    with ScriptedServer(lambda _: Reply(200, TRADES_BODY, heavy)) as server:
        budget = WeightBudget(100, window_seconds=1.0, grace_seconds=0.05)
        fresh_window(1.0)
        quick_client(server.base_url, budget=budget).historical_trades(SYMBOL, limit=1)
        other = quick_client(server.base_url, budget=budget)
        other.historical_trades(SYMBOL, limit=1)
    assert other.stats.sleeps == 1 and other.stats.sleep_seconds > 0.2


# --- against the simulator ------------------------------------------------------------------------

NOW = dt.datetime(2025, 3, 10, 3, 0, tzinfo=UTC)
SMALL = SimConfig(seed=11, trades_per_day=20_000, symbols=(SYMBOL, "ETHUSDT"))


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(SMALL, clock=lambda: NOW) as simulator:
        yield simulator


@pytest.fixture
def rest(sim: Simulator) -> Iterator[BinanceRest]:
    sim.reset()
    with BinanceRest(sim.base_url, backoff_base=0.01, backoff_cap=0.1) as client:
        yield client


def test_a_day_from_rest_equals_the_ground_truth(sim: Simulator, rest: BinanceRest):
    day = dt.date(2024, 12, 31)  # ms timestamps: REST and archive agree to the microsecond
    trades = rest.trades_for_day(SYMBOL, day)
    assert trades.schema == RAW_TRADES
    assert trades.equals(sim.ground_truth(SYMBOL, day))


def test_a_microsecond_day_from_rest_equals_the_ground_truth_at_ms_precision(
    sim: Simulator, rest: BinanceRest
):
    day = dt.date(2025, 1, 1)
    truth = sim.ground_truth(SYMBOL, day).with_columns(pl.col("ts").dt.truncate("1ms"))
    assert rest.trades_for_day(SYMBOL, day).equals(truth)


def test_today_so_far_ends_at_the_latest_trade(sim: Simulator, rest: BinanceRest):
    trades = rest.trades_for_day(SYMBOL, NOW.date())
    first = data.first_trade_id(SYMBOL, NOW.date(), SMALL)
    last = data.last_trade_id_at(SYMBOL, NOW, SMALL)
    assert trades["trade_id"].to_list() == list(range(first, last + 1))


def test_trades_between_ids_returns_exactly_those_ids(sim: Simulator, rest: BinanceRest):
    first = data.block_first_id(SYMBOL, dt.date(2025, 2, 3), 5, SMALL) - 700  # spans two hours
    last = first + 2345
    got = rest.trades_between_ids(SYMBOL, first, last)
    expected = data.to_raw_trades(data.trades_between_ids(SYMBOL, first, last, SMALL))
    assert got.equals(expected.with_columns(pl.col("ts").dt.truncate("1ms")))
    assert rest.stats.requests == 3


def test_trades_from_id_stops_before_until_ts(sim: Simulator, rest: BinanceRest):
    start = data.first_trade_id(SYMBOL, dt.date(2024, 6, 1), SMALL)
    until = dt.datetime(2024, 6, 1, 1, 0, tzinfo=UTC)
    pages = list(rest.trades_from_id(SYMBOL, start, until_ts=until))
    assert all(page.height <= 1000 for page in pages)
    ids = pl.concat(pages)["trade_id"]
    assert ids.to_list() == list(range(start, data.block_first_id(SYMBOL, "2024-06-01", 1, SMALL)))


def test_trades_from_id_runs_to_the_latest_trade(sim: Simulator, rest: BinanceRest):
    last = data.last_trade_id_at(SYMBOL, NOW, SMALL)
    pages = list(rest.trades_from_id(SYMBOL, last - 2500))
    assert pl.concat(pages)["trade_id"].to_list() == list(range(last - 2500, last + 1))


def test_reverse_mode_walks_back_page_by_page_to_the_start_of_the_date(
    sim: Simulator, rest: BinanceRest
):
    pages = list(rest.trades_back_to(SYMBOL, NOW.date()))
    firsts = [page["trade_id"][0] for page in pages]
    assert firsts == sorted(firsts, reverse=True)  # newest page first
    assert all(page["trade_id"].is_sorted() for page in pages)  # ascending inside a page
    ids = pl.concat(pages).sort("trade_id")["trade_id"].to_list()
    first = data.first_trade_id(SYMBOL, NOW.date(), SMALL)
    assert ids == list(range(first, data.last_trade_id_at(SYMBOL, NOW, SMALL) + 1))
    assert pl.concat(pages)["ts"].min() >= midnight(NOW.date())


def test_reverse_mode_stops_at_the_first_trade_ever():
    early = dt.datetime(2017, 7, 1, 2, 0, tzinfo=UTC)  # two hours into the universe
    with (
        Simulator(SMALL, clock=lambda: early) as simulator,
        BinanceRest(simulator.base_url) as rest,
    ):
        pages = list(rest.trades_back_to(SYMBOL, dt.date(2017, 6, 1)))
    ids = pl.concat(pages).sort("trade_id")["trade_id"].to_list()
    first = data.first_trade_id(SYMBOL, data.ORIGIN, SMALL)
    assert ids == list(range(first, data.last_trade_id_at(SYMBOL, early, SMALL) + 1))
    assert rest.stats.requests == len(pages) + 2  # the empty page below, one probe of id 0


def test_the_from_date_search_finds_the_first_id_of_each_day(sim: Simulator, rest: BinanceRest):
    for day in [dt.date(2017, 7, 1), dt.date(2020, 2, 29), dt.date(2025, 1, 1), NOW.date()]:
        assert rest.first_trade_id_at(SYMBOL, midnight(day)) == data.first_trade_id(
            SYMBOL, day, SMALL
        )
    later = NOW + dt.timedelta(hours=1)
    assert rest.first_trade_id_at(SYMBOL, later) == data.last_trade_id_at(SYMBOL, NOW, SMALL) + 1


def test_a_from_date_search_on_a_million_trade_day_needs_few_requests():
    """trades_per_day = 1,000,000 over 2017-07..2025-03: ~2.8e9 trade ids to search."""
    cfg = SimConfig(seed=5, trades_per_day=1_000_000, symbols=(SYMBOL,))
    now = dt.datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    with Simulator(cfg, clock=lambda: now) as simulator, BinanceRest(simulator.base_url) as rest:
        for day in [dt.date(2019, 3, 14), dt.date(2024, 12, 31), dt.date(2025, 1, 1), now.date()]:
            before = rest.stats.requests
            found = rest.first_trade_id_at(SYMBOL, midnight(day))
            assert found == data.first_trade_id(SYMBOL, day, cfg)
            assert rest.stats.requests - before < 40
        # An hour inside a day: the first trade at or after 13:00 exactly.
        target = dt.datetime(2024, 7, 1, 13, 0, tzinfo=UTC)
        expected = data.first_trade_id_at_or_after(SYMBOL, target, cfg)
        before = rest.stats.requests
        assert rest.first_trade_id_at(SYMBOL, target) == expected
        assert rest.stats.requests - before < 40


def test_a_rate_limit_storm_is_ridden_out_without_a_ban():
    """Weight limit 200 per 1 s window: 30 pages of weight 25 need about 5 windows."""
    window = 1.0
    with Simulator(SMALL, clock=lambda: NOW, weight_limit=200, window_seconds=window) as simulator:
        budget = WeightBudget(200, window_seconds=window)
        clients = [BinanceRest(simulator.base_url, budget=budget) for _ in range(2)]
        first = data.first_trade_id(SYMBOL, dt.date(2025, 3, 1), SMALL)
        results: dict[int, pl.DataFrame] = {}

        def backfill(n: int) -> None:
            start = first + n * 15_000
            results[n] = clients[n].trades_between_ids(SYMBOL, start, start + 14_999)

        threads = [threading.Thread(target=backfill, args=(n,)) for n in range(2)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        assert simulator.stats.count_418 == 0
        # A request sent just before a window ends may be counted by the server in the next
        # window; under load that can cost one 429 (honoured, never a ban) per boundary.
        assert simulator.stats.count_429 <= elapsed / window
    assert [results[n].height for n in range(2)] == [15_000, 15_000]
    assert sum(c.stats.sleeps for c in clients) > 0
    assert elapsed >= 3 * window  # 750 weight at 180 a window: it really was throttled


def test_a_server_limit_lower_than_the_clients_is_met_with_429s_but_never_a_ban():
    with Simulator(SMALL, clock=lambda: NOW, window_seconds=1.0) as simulator:
        simulator.faults.weight_limit = 60  # the exchange lowered it; the client thinks 6000
        with BinanceRest(simulator.base_url, backoff_base=0.01) as rest:
            first = data.first_trade_id(SYMBOL, dt.date(2025, 2, 1), SMALL)
            got = rest.trades_between_ids(SYMBOL, first, first + 5999)
        assert got.height == 6000
        assert simulator.stats.count_429 >= 1
        assert rest.stats.http_429 == simulator.stats.count_429
        assert simulator.stats.count_418 == 0


def test_5xx_from_the_simulator_are_retried(sim: Simulator, rest: BinanceRest):
    sim.faults.fail_5xx = 3
    assert rest.historical_trades(SYMBOL, limit=5).height == 5
    assert rest.stats.http_5xx == 3 and rest.stats.retries == 3


def test_an_unknown_symbol_is_refused_with_binances_code(sim: Simulator, rest: BinanceRest):
    with pytest.raises(RestError) as caught:
        rest.historical_trades("DOGEUSDT")
    assert caught.value.code == -1121 and caught.value.status == 400


def test_reference_endpoints(sim: Simulator, rest: BinanceRest):
    info = rest.exchange_info()
    assert set(info) == {SYMBOL, "ETHUSDT"} and info[SYMBOL]["baseAsset"] == "BTC"
    assert rest.symbols(trading_only=True) == {SYMBOL, "ETHUSDT"}
    assert rest.server_time() == NOW
    book = rest.depth(SYMBOL, limit=5)
    assert len(book["bids"]) == 5 and book["bids"][0][0] < book["asks"][0][0]
    agg = rest.agg_trades(SYMBOL, start_time=NOW - dt.timedelta(minutes=10), end_time=NOW, limit=50)
    assert agg.height == 50 and (agg["first_trade_id"] == agg["agg_id"]).all()
    assert rest.stats.weight_used == 20 + 20 + 1 + 5 + 4
