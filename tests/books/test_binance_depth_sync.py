"""Binance diff depth: the recorded NKNUSDT stream (2021-10-12) syncs to its REST snapshot by
the documented U/u rules; lost, reordered and stale pieces are caught and recovered from."""

from __future__ import annotations

import orjson
import pytest
from support.recordings import received_frames
from support.samples import (
    BINANCE_DEPTH20_2025,
    BINANCE_DIFF_SESSION,
    BINANCE_DIFFS_2025,
    BINANCE_NKNUSDT_SNAPSHOT,
)

from marketlake.exchanges.binance.depth_sync import (
    BinanceDepthSync,
    BinanceDiffBooks,
    DepthSnapshot,
    DepthUpdate,
    parse_depth_snapshot,
    parse_depth_update,
)
from marketlake.exchanges.book import (
    BOOK_BAD_UPDATE,
    BOOK_GAP,
    BOOK_RESYNCED,
    BOOK_STALE_SNAPSHOT,
    BookEvent,
)
from marketlake.exchanges.errors import ResponseFormatError
from marketlake.exchanges.feed import Depth, Reject
from marketlake.exchanges.fields import Refused

Events = list[tuple[int, DepthUpdate]]


@pytest.fixture(scope="module")
def snapshot() -> tuple[int, DepthSnapshot]:
    """The REST snapshot cryptofeed fetched after opening the stream, and when it arrived."""
    line = BINANCE_NKNUSDT_SNAPSHOT.read_bytes().rstrip(b"\n")
    url, _, rest = line.partition(b" -> ")
    assert url.endswith(b"symbol=NKNUSDT&limit=1000")
    stamp, _, body = rest.partition(b": ")
    return round(float(stamp) * 1_000_000), parse_depth_snapshot(body)


@pytest.fixture(scope="module")
def diffs() -> Events:
    """NKNUSDT's ``@depth@100ms`` events of the recording, with their receive times."""
    events = []
    for received_at_us, frame in received_frames(BINANCE_DIFF_SESSION):
        message = orjson.loads(frame)
        if message["stream"] == "nknusdt@depth@100ms":
            events.append((received_at_us, parse_depth_update(message["data"])))
    return events


def replay(snapshot, diffs: Events, sync: BinanceDepthSync | None = None):
    """Play events and the snapshot in the order they arrived, as a feed handler would."""
    snapshot_at, snap = snapshot
    sync = sync or BinanceDepthSync("NKNUSDT")
    records = []
    pending = True
    for received_at_us, event in diffs:
        if pending and received_at_us > snapshot_at:
            records += sync.snapshot(snap, snapshot_at)
            pending = False
        records += sync.update(event, received_at_us)
    if pending:
        records += sync.snapshot(snap, snapshot_at)
    return sync, records


def oracle(snap: DepthSnapshot, diffs: Events) -> tuple[list, list]:
    """An independent rebuild: dicts, the events after the snapshot applied in order."""
    bids, asks = dict(snap.bids), dict(snap.asks)
    for _, event in diffs:
        if event.final_id <= snap.last_update_id:
            continue
        for side, levels in ((bids, event.bids), (asks, event.asks)):
            for price, qty in levels:
                if qty == 0.0:
                    side.pop(price, None)
                else:
                    side[price] = qty
    return (
        [(p, bids[p]) for p in sorted(bids, reverse=True)],
        [(p, asks[p]) for p in sorted(asks)],
    )


def book_events(records) -> list[BookEvent]:
    return [r for r in records if type(r) is BookEvent]


def test_the_recorded_stream_syncs_to_its_snapshot_by_the_documented_rules(snapshot, diffs):
    _, snap = snapshot
    assert diffs[0][1].final_id == snap.last_update_id  # already in the snapshot: dropped
    assert diffs[1][1].first_id == snap.last_update_id + 1  # the first one applied

    sync, records = replay(snapshot, diffs)

    assert book_events(records) == []
    assert (sync.dropped, sync.applied) == (1, len(diffs) - 1)
    assert sync.synced.book.state() == oracle(snap, diffs)
    depth = [r for r in records if type(r) is Depth]
    assert depth[-1].last_update_id == diffs[-1][1].final_id
    assert depth[-1].ts_us == diffs[-1][1].event_time_us
    bids, asks = oracle(snap, diffs)
    assert list(zip(depth[-1].bid_prices, depth[-1].bid_qtys, strict=True)) == bids[:20]
    assert list(zip(depth[-1].ask_prices, depth[-1].ask_qtys, strict=True)) == asks[:20]


def test_events_buffered_before_the_snapshot_are_replayed_once_it_arrives(snapshot, diffs):
    sync = BinanceDepthSync("NKNUSDT")
    for received_at_us, event in diffs[:40]:
        assert sync.update(event, received_at_us) == []  # nothing written without a book
    assert sync.needs_snapshot
    records = sync.snapshot(snapshot[1], snapshot[0])
    assert [type(r) for r in records] == [Depth]
    assert records[0].last_update_id == diffs[39][1].final_id
    assert sync.synced.book.state() == oracle(snapshot[1], diffs[:40])


def fresh_snapshot(snapshot, diffs: Events, upto: int) -> DepthSnapshot:
    """What ``/api/v3/depth`` would answer right after ``diffs[upto]``: the whole book of
    the uninterrupted stream at that update id."""
    bids, asks = oracle(snapshot[1], diffs[: upto + 1])
    return DepthSnapshot(diffs[upto][1].final_id, bids, asks)


def assert_caught_then_resynced(snapshot, diffs: Events, faulty: Events, expected, got):
    sync, broken = replay(snapshot, faulty)
    (event,) = book_events(broken)
    assert (event.kind, event.instrument, event.expected, event.got) == (
        BOOK_GAP,
        "NKNUSDT",
        expected,
        got,
    )
    assert [r for r in broken[broken.index(event) :] if type(r) is Depth] == []
    assert sync.needs_snapshot

    # A fresh snapshot taken a few events before the end bridges to the buffered events.
    resync_at = len(diffs) - 6
    records = sync.snapshot(fresh_snapshot(snapshot, diffs, resync_at), diffs[-1][0])
    assert [type(r) for r in records] == [BookEvent, Depth]
    assert records[0].kind == BOOK_RESYNCED and records[0].skipped > 0
    assert sync.synced.book.state() == oracle(snapshot[1], diffs)
    assert records[1].last_update_id == diffs[-1][1].final_id


def test_a_dropped_event_is_a_gap_and_a_fresh_snapshot_restores_the_book(snapshot, diffs):
    k = 50
    faulty = diffs[:k] + diffs[k + 1 :]
    expected = diffs[k][1].first_id
    assert_caught_then_resynced(snapshot, diffs, faulty, expected, diffs[k + 1][1].first_id)


def test_two_events_swapped_are_a_gap(snapshot, diffs):
    k = 70
    faulty = list(diffs)
    faulty[k], faulty[k + 1] = faulty[k + 1], faulty[k]
    assert_caught_then_resynced(
        snapshot, diffs, faulty, diffs[k][1].first_id, diffs[k + 1][1].first_id
    )


def test_a_snapshot_older_than_the_stream_is_refused_and_asked_for_again():
    """Real pieces that do not belong together: BTCUSDT diffs of 2025-12-07 and a depth20
    book of 2025-11-08, whose lastUpdateId is long before the diffs' first U."""
    old = orjson.loads(BINANCE_DEPTH20_2025.read_bytes())["data"]
    snap = parse_depth_snapshot(orjson.dumps(old))
    sync = BinanceDepthSync("BTCUSDT")
    lines = BINANCE_DIFFS_2025.read_bytes().splitlines()
    updates = [parse_depth_update(orjson.loads(line)["data"]) for line in lines]
    for update in updates[:10]:
        sync.update(update, 1)
    (event,) = sync.snapshot(snap, 2)
    assert (event.kind, event.expected, event.got) == (
        BOOK_STALE_SNAPSHOT,
        updates[0].first_id - 1,
        old["lastUpdateId"],
    )
    assert sync.needs_snapshot and sync.synced.depth(1, 1) is None


def test_the_recorded_2025_diffs_chain_without_a_gap_once_synced():
    lines = BINANCE_DIFFS_2025.read_bytes().splitlines()
    updates = [parse_depth_update(orjson.loads(line)["data"]) for line in lines]
    sync = BinanceDepthSync("BTCUSDT")
    # Hand-built: an empty book at the id just before the first diff, to follow the chain.
    sync.snapshot(DepthSnapshot(updates[0].first_id - 1, [], []), 0)
    records = [r for u in updates for r in sync.update(u, 1)]
    assert book_events(records) == [] and sync.applied == len(updates) == 425


# --- hand-built sequences: the U/u rules one at a time ------------------------------------


def hand_built(first: int, final: int, bids=(), asks=()) -> DepthUpdate:
    """A hand-built event (not a capture)."""
    return DepthUpdate("X", first, final, 1_000_000 * final, list(bids), list(asks))


def test_hand_built_the_first_event_must_straddle_the_snapshot():
    sync = BinanceDepthSync("X")
    sync.snapshot(DepthSnapshot(100, [(1.0, 1.0)], [(2.0, 1.0)]), 0)
    assert sync.update(hand_built(90, 100), 1) == []  # u <= lastUpdateId: already in the book
    (depth,) = sync.update(hand_built(95, 103, bids=[(1.0, 0.0)]), 1)  # 95 <= 101 <= 103
    assert depth.bid_prices == [] and depth.last_update_id == 103
    assert sync.dropped == 1


def test_hand_built_after_the_first_event_each_must_start_right_after_the_last():
    sync = BinanceDepthSync("X")
    sync.snapshot(DepthSnapshot(100, [(1.0, 1.0)], [(2.0, 1.0)]), 0)
    sync.update(hand_built(101, 105), 1)
    (gap,) = sync.update(hand_built(104, 108), 1)  # overlaps: not the next event
    assert (gap.kind, gap.expected, gap.got) == (BOOK_GAP, 106, 104)


def test_hand_built_a_first_event_past_the_snapshot_is_a_gap():
    sync = BinanceDepthSync("X")
    sync.snapshot(DepthSnapshot(100, [(1.0, 1.0)], []), 0)
    (gap,) = sync.update(hand_built(102, 103), 1)
    assert (gap.kind, gap.expected, gap.got, gap.levels_affected) == (BOOK_GAP, 101, 102, 1)


def test_hand_built_a_repeated_event_is_dropped_not_applied_twice():
    sync = BinanceDepthSync("X")
    sync.snapshot(DepthSnapshot(100, [], []), 0)
    sync.update(hand_built(101, 101, asks=[(2.0, 3.0)]), 1)
    assert sync.update(hand_built(101, 101, asks=[(2.0, 3.0)]), 1) == []
    assert (sync.applied, sync.dropped) == (1, 1)


def test_an_event_for_another_symbol_is_refused():
    sync = BinanceDepthSync("NKNUSDT")
    with pytest.raises(Refused, match="'X' is not NKNUSDT"):
        sync.update(hand_built(1, 2), 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "depth: response is not JSON"),
        (b'{"bids": [], "asks": []}', "depth: missing field 'lastUpdateId'"),
        (b'{"lastUpdateId": 1, "bids": [["1", "x"]], "asks": []}', "depth: mistyped field 'bids'"),
        (b'{"lastUpdateId": 1, "bids": [], "asks": [["1", "0"]]}', "depth: level out of range"),
    ],
)
def test_a_malformed_snapshot_is_refused_with_what_was_wrong(body, message):
    with pytest.raises(ResponseFormatError, match=message):
        parse_depth_snapshot(body)


def test_a_diff_event_with_its_ids_backwards_is_refused():
    data = orjson.loads(BINANCE_DIFFS_2025.read_bytes().splitlines()[0])["data"]
    data["U"], data["u"] = data["u"], data["U"]
    with pytest.raises(Refused, match=r"first update id U=\d+ after final u=\d+"):
        parse_depth_update(data)


# --- one connection's frames ----------------------------------------------------------------


def test_a_connection_writes_depth_only_for_symbols_whose_snapshot_arrived(snapshot):
    books = BinanceDiffBooks(["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"])
    assert books.needing_snapshot() == ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
    body = BINANCE_NKNUSDT_SNAPSHOT.read_bytes().rstrip(b"\n").partition(b": ")[2]
    records = []
    sent = False
    for received_at_us, frame in received_frames(BINANCE_DIFF_SESSION):
        if not sent and received_at_us > snapshot[0]:
            records += books.snapshot("NKNUSDT", body, snapshot[0])
            sent = True
        if b"@depth@100ms" in frame[:40]:
            records += books.parse(frame, received_at_us)
    assert books.needing_snapshot() == ["BLZETH", "LRCBTC", "RUNEEUR"]
    assert {type(r) for r in records} == {Depth}
    assert {r.symbol for r in records} == {"NKNUSDT"}


def test_a_malformed_event_is_quarantined_and_takes_the_book_out_of_sync(snapshot, diffs):
    books = BinanceDiffBooks(["NKNUSDT"])
    books.syncs["NKNUSDT"].snapshot(snapshot[1], 0)
    frame = {"stream": "nknusdt@depth@100ms", "data": {**diffs[1][1]._asdict()}}
    (rejected, event) = books.parse(orjson.dumps(frame), 1)
    assert (
        type(rejected) is Reject and rejected.reason == "mistyped field 'e': expected 'depthUpdate'"
    )
    assert rejected.symbol == "NKNUSDT"
    assert (event.kind, event.expected) == (BOOK_BAD_UPDATE, snapshot[1].last_update_id)
    assert books.needing_snapshot() == ["NKNUSDT"]
    other = b'{"stream":"btcusdt@depth@100ms","data":{}}'
    assert books.parse(other, 1)[0].reason == "not a subscribed diff-depth stream"


def test_hand_built_a_snapshot_older_than_an_in_sync_book_is_ignored():
    sync = BinanceDepthSync("X")
    sync.snapshot(DepthSnapshot(100, [(1.0, 1.0)], []), 0)
    sync.update(hand_built(101, 105, bids=[(1.5, 2.0)]), 1)
    assert sync.snapshot(DepthSnapshot(103, [(9.0, 9.0)], []), 2) == []
    assert sync.synced.book.bids.levels() == [(1.5, 2.0), (1.0, 1.0)]
    (depth,) = sync.update(hand_built(106, 106), 3)  # the chain goes on
    assert depth.last_update_id == 106
