"""Every wait on the exchange is bounded, said out loud, and given up with the URL named.

Loopback servers that drip a byte at a time, never answer, or ask for a Retry-After of a
day; the deadlines are lowered so the tests stay short. What is asserted is what a user
sees: the error naming the URL and the limit, and the notices said before each wait.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import zipfile

import pytest
from support.samples import TRADES_CSV_2024
from support.scripted_server import TRADES_BODY, Reply, ScriptedServer

from marketlake.exchanges.binance.archive import BinanceArchive
from marketlake.exchanges.binance.ratelimit import WaitTooLong, WeightBudget
from marketlake.exchanges.binance.rest import BinanceRest
from marketlake.exchanges.errors import ArchiveDownloadError, RestError
from marketlake.exchanges.waits import TransferDeadline

DAY = dt.date(2024, 12, 31)
ZIP_PATH = "/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-12-31.zip"
DRIP = TransferDeadline(total_s=30.0, min_bytes_per_s=1_000, rate_grace_s=0.3)


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("BTCUSDT-trades-2024-12-31.csv", TRADES_CSV_2024.read_bytes())
    return buffer.getvalue()


ZIP = zip_bytes()
CHECKSUM = f"{hashlib.sha256(ZIP).hexdigest()}  BTCUSDT-trades-2024-12-31.zip".encode()


def archive_server(*zip_replies: Reply) -> ScriptedServer:
    """The CHECKSUM answers; the zip answers with `zip_replies` in turn, then properly."""
    replies = list(zip_replies)

    def reply(path: str) -> Reply:
        if path == ZIP_PATH + ".CHECKSUM":
            return Reply(200, CHECKSUM)
        if path == ZIP_PATH:
            return replies.pop(0) if replies else Reply(200, ZIP)
        return Reply(404, b"")

    return ScriptedServer(reply)


def archive(server: ScriptedServer, notices: list[str], **options: object) -> BinanceArchive:
    defaults: dict[str, object] = {"retries": 1, "backoff_base": 0.01, "backoff_cap": 0.02}
    return BinanceArchive(server.base_url, on_wait=notices.append, **{**defaults, **options})  # type: ignore[arg-type]


# --- the archive ------------------------------------------------------------------------------


def test_an_archive_that_drips_is_given_up_naming_the_url_and_the_rate():
    notices: list[str] = []
    drip = Reply(200, ZIP, drip=0.05)
    with archive_server(drip, drip) as server, pytest.raises(ArchiveDownloadError) as caught:
        archive(server, notices, deadline=DRIP).fetch_day("BTCUSDT", DAY)
    message = str(caught.value)
    assert ZIP_PATH in message and "too slow" in message
    assert "slower than the 1,000 B/s a download must keep up" in message
    assert len(notices) == 1 and "retry 1 of 1" in notices[0] and ZIP_PATH in notices[0]


def test_an_archive_that_never_answers_is_given_up_naming_the_url_and_the_timeout():
    notices: list[str] = []
    hung = Reply(200, ZIP, delay=3.0)
    with archive_server(hung, hung) as server, pytest.raises(ArchiveDownloadError) as caught:
        archive(server, notices, timeout=0.2).fetch_day("BTCUSDT", DAY)
    assert ZIP_PATH in str(caught.value) and "no answer within 0.2 s" in str(caught.value)
    assert notices and "no answer within 0.2 s" in notices[0] and "retry 1 of 1" in notices[0]


def test_the_archive_honours_retry_after_and_says_so():
    notices: list[str] = []
    busy = Reply(503, b"", {"Retry-After": "0.3"})
    with archive_server(busy) as server:
        day = archive(server, notices).fetch_day("BTCUSDT", DAY)
        zip_times = [t for t, path in server.seen if path == ZIP_PATH]
    assert day.trades.height == 217
    assert notices == [f"{server.base_url}{ZIP_PATH}: HTTP 503; retry 1 of 1 in 0.3 s"]
    assert zip_times[1] - zip_times[0] >= 0.3  # waited at least what it was asked


def test_a_retry_after_of_a_day_is_given_up_at_once_not_slept():
    notices: list[str] = []
    with (
        archive_server(Reply(429, b"", {"Retry-After": "86400"})) as server,
        pytest.raises(ArchiveDownloadError) as caught,
    ):
        archive(server, notices, retries=3).fetch_day("BTCUSDT", DAY)
    message = str(caught.value)
    assert ZIP_PATH in message
    assert "asks to wait 86,400 s (Retry-After), more than max_wait_s 300 s" in message
    assert [path for _, path in server.seen].count(ZIP_PATH) == 1 and notices == []


# --- REST -------------------------------------------------------------------------------------


def rest(server: ScriptedServer, notices: list[str], **options: object) -> BinanceRest:
    defaults: dict[str, object] = {"backoff_base": 0.01, "backoff_cap": 0.02, "max_retries": 1}
    return BinanceRest(server.base_url, on_wait=notices.append, **{**defaults, **options})  # type: ignore[arg-type]


def test_a_rest_retry_after_of_a_day_gives_up_at_once_for_every_client_on_the_budget():
    notices: list[str] = []
    script = [Reply(429, b'{"code":-1003,"msg":"Too many requests"}', {"Retry-After": "86400"})]
    budget = WeightBudget(6000)
    with ScriptedServer(script) as server:
        first = rest(server, notices, budget=budget, max_retries=5)
        with pytest.raises(RestError) as caught:
            first.historical_trades("BTCUSDT", limit=1)
        second = rest(server, notices, budget=budget)
        with pytest.raises(RestError) as held_back:
            second.historical_trades("BTCUSDT", limit=1)
        assert len(server.seen) == 1  # the second client never sent
    assert "/api/v3/historicalTrades" in str(caught.value)
    assert "asks to wait 86,400 s (Retry-After), more than max_wait_s 300 s" in str(caught.value)
    assert caught.value.status == 429 and caught.value.code == -1003
    # what is left of the day when the second client asks (a loaded machine may take a while)
    assert re.search(r"would wait 86,[34]\d\d s for the end of a Retry-After", str(held_back.value))


def test_a_rest_answer_that_drips_is_given_up_naming_the_url():
    notices: list[str] = []
    drip = Reply(200, TRADES_BODY, drip=0.05)
    with ScriptedServer([drip, drip]) as server, pytest.raises(RestError) as caught:
        rest(server, notices, deadline=DRIP).historical_trades("BTCUSDT", limit=1)
    assert "failed after 1 retries" in str(caught.value) and "too slow" in str(caught.value)
    assert len(notices) == 1 and "/api/v3/historicalTrades: too slow" in notices[0]


def test_a_rest_server_that_never_answers_is_announced_before_each_retry():
    notices: list[str] = []
    hung = Reply(200, TRADES_BODY, delay=3.0)
    with ScriptedServer([hung, Reply(200, TRADES_BODY)]) as server:
        trades = rest(server, notices, timeout=0.2).historical_trades("BTCUSDT", limit=1)
    assert trades.height == 1
    assert len(notices) == 1 and "no answer within 0.2 s" in notices[0]
    assert "retry 1 of 1" in notices[0]


def test_a_full_weight_window_is_announced_and_bounded():
    now = [1000.0]
    budget = WeightBudget(100, window_seconds=60.0, grace_seconds=0.0, clock=lambda: now[0])
    budget.settle(budget.acquire(90), None)
    with pytest.raises(WaitTooLong) as caught:
        budget.acquire(10, max_wait_s=5.0)
    assert caught.value.seconds == pytest.approx(20.0)
    assert "the next window's request weight" in caught.value.why
    told: list[tuple[float, str]] = []
    now[0] = 1019.99
    budget.acquire(
        10, notice=lambda seconds, why: told.append((seconds, why)) or now.__setitem__(0, 1020.0)
    )
    assert len(told) == 1 and told[0][0] == pytest.approx(0.01)
