"""OKX ``books``: the recorded session (2022-05-13) rebuilds and every checksum verifies;
a lost, reordered or corrupted update is caught and a fresh snapshot brings the book back."""

from __future__ import annotations

import zlib
from itertools import zip_longest

import orjson
import pytest
from support.recordings import instrument_of, okx_book_frames, received_frames
from support.samples import OKX_SESSION

from marketlake.exchanges.book import (
    BOOK_BAD_UPDATE,
    BOOK_CHECKSUM,
    BOOK_GAP,
    BOOK_RESYNCED,
    BookEvent,
)
from marketlake.exchanges.feed import Depth, Reject
from marketlake.exchanges.okx.books import checksum, resubscribe
from marketlake.exchanges.okx.websocket import OkxParser

INSTRUMENTS = ("BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527")
Frames = list[tuple[int, bytes]]


@pytest.fixture(scope="module")
def frames() -> Frames:
    return okx_book_frames(OKX_SESSION)


def run(frames: Frames, parser: OkxParser | None = None) -> tuple[OkxParser, list]:
    parser = parser or OkxParser(INSTRUMENTS)
    records = []
    for received_at_us, frame in frames:
        records.extend(parser.parse(frame, received_at_us))
    return parser, records


def oracle(frames: Frames):
    """An independent rebuild: a dict per side, sorted on every read, the checksum by hand.

    Yields (instrument, sent checksum, recomputed checksum, top-20 bids, top-20 asks).
    """
    books: dict[str, tuple[dict, dict]] = {}
    for _, frame in frames:
        message = orjson.loads(frame)
        instrument, data = message["arg"]["instId"], message["data"][0]
        if message["action"] == "snapshot":
            books[instrument] = ({}, {})
        for side, key in zip(books[instrument], ("bids", "asks"), strict=True):
            for price, size, *_ in data[key]:
                if float(size) == 0.0:
                    side.pop(float(price), None)
                else:
                    side[float(price)] = (price, size)
        bids, asks = books[instrument]
        best_bids = [bids[p] for p in sorted(bids, reverse=True)]
        best_asks = [asks[p] for p in sorted(asks)]
        text = ":".join(
            f"{level[0]}:{level[1]}"
            for pair in zip_longest(best_bids[:25], best_asks[:25])
            for level in pair
            if level is not None
        )
        crc = zlib.crc32(text.encode())
        yield (
            instrument,
            data["checksum"],
            crc - 2**32 if crc >= 2**31 else crc,
            [float(p) for p, _ in best_bids[:20]],
            [float(p) for p, _ in best_asks[:20]],
        )


def events(records: list) -> list[BookEvent]:
    return [r for r in records if type(r) is BookEvent]


def depths(records: list, instrument: str) -> list[Depth]:
    return [r for r in records if type(r) is Depth and r.symbol == instrument]


def test_the_recording_holds_195_book_messages_each_with_a_checksum(frames):
    assert len(frames) == 195
    assert all("checksum" in orjson.loads(f)["data"][0] for _, f in frames)
    assert sum(1 for _, f in frames if b'"action":"snapshot"' in f) == 3


def test_every_book_of_the_recorded_session_rebuilds_and_every_checksum_matches(frames):
    expected = list(oracle(frames))
    assert all(sent == recomputed for _, sent, recomputed, _, _ in expected)

    parser, records = run(frames)

    assert parser.books.verified == len(frames) == 195
    assert events(records) == []
    assert [r for r in records if type(r) is Reject] == []
    depth = [r for r in records if type(r) is Depth]
    assert len(depth) == len(frames)
    for record, (instrument, _, _, bids, asks) in zip(depth, expected, strict=True):
        assert record.symbol == instrument
        assert record.bid_prices == bids and record.ask_prices == asks
        assert len(record.bid_prices) == 20 and record.bid_prices[0] < record.ask_prices[0]


def test_the_checksum_is_over_the_strings_as_sent_not_the_numbers():
    first = orjson.loads(okx_book_frames(OKX_SESSION)[0][1])["data"][0]
    as_sent = [(level[0], level[1]) for level in first["bids"]]
    asks = [(level[0], level[1]) for level in first["asks"]]
    assert checksum(as_sent, asks) == first["checksum"]
    as_floats = [(repr(float(p)), repr(float(s))) for p, s in as_sent]
    assert as_floats != as_sent  # "30238.8" / "2" vs "30238.8" / "2.0"
    assert checksum(as_floats, asks) != first["checksum"]


# --- faults -------------------------------------------------------------------------------


def update_positions(frames: Frames, instrument: str) -> list[int]:
    return [
        i
        for i, (_, f) in enumerate(frames)
        if instrument_of(f) == instrument and b'"action":"update"' in f
    ]


def fresh_snapshot(frames: Frames, upto: int) -> tuple[int, bytes]:
    """What OKX would send on resubscribing right after ``frames[upto]``: that moment's whole
    book (rebuilt from the uninterrupted stream), its ``ts`` and its checksum."""
    reference, _ = run(frames[: upto + 1])
    message = orjson.loads(frames[upto][1])
    instrument, data = message["arg"]["instId"], message["data"][0]
    book = reference.books.books[instrument].book
    snapshot = {
        "arg": message["arg"],
        "action": "snapshot",
        "data": [
            {
                "asks": [[p, s, "0", "1"] for p, s in book.asks.level_texts()],
                "bids": [[p, s, "0", "1"] for p, s in book.bids.level_texts()],
                "ts": data["ts"],
                "checksum": data["checksum"],
            }
        ],
    }
    return frames[upto][0], orjson.dumps(snapshot)


def assert_caught_then_resynced(frames: Frames, faulty: Frames, kind: str, instrument: str):
    """The fault is reported once, no depth is written for the instrument until a fresh
    snapshot, and after it the book equals the uninterrupted one, message for message."""
    _, broken = run(faulty)
    caught = events(broken)
    assert [(e.kind, e.instrument) for e in caught] == [(kind, instrument)]
    assert caught[0].levels_affected > 0

    # Resync a few messages later, from a fresh snapshot, then play the rest of the session.
    resync_at = update_positions(frames, instrument)[-6]
    parser, records = run(faulty[: faulty.index(frames[resync_at]) + 1])
    depth_before = len(depths(records, instrument))
    parser, after = run([fresh_snapshot(frames, resync_at), *frames[resync_at + 1 :]], parser)
    assert [e.kind for e in events(after)] == [BOOK_RESYNCED]
    assert events(after)[0].skipped > 0

    reference, reference_records = run(frames)
    assert parser.books.books[instrument].book.state() == (
        reference.books.books[instrument].book.state()
    )
    assert depths(after, instrument) == depths(reference_records, instrument)[-6:]
    # Between the fault and the resync, nothing was written for the instrument.
    detected_at = next(i for i, r in enumerate(broken) if type(r) is BookEvent)
    assert depths(broken[detected_at:], instrument) == []
    assert depth_before == len(depths(broken[:detected_at], instrument))


def test_a_dropped_update_fails_the_next_checksum_and_a_fresh_snapshot_restores_the_book(
    frames,
):
    k = update_positions(frames, "BTC-USDT")[10]
    faulty = frames[:k] + frames[k + 1 :]
    assert_caught_then_resynced(frames, faulty, BOOK_CHECKSUM, "BTC-USDT")


def test_a_wrong_checksum_is_caught_and_names_both_values(frames):
    k = update_positions(frames, "UNI-USD-SWAP")[20]
    message = orjson.loads(frames[k][1])
    sent = message["data"][0]["checksum"]
    message["data"][0]["checksum"] = sent ^ 1
    faulty = [*frames[:k], (frames[k][0], orjson.dumps(message)), *frames[k + 1 :]]
    _, records = run(faulty)
    (event,) = events(records)
    assert (event.kind, event.expected, event.got) == (BOOK_CHECKSUM, sent ^ 1, sent)
    assert_caught_then_resynced(frames, faulty, BOOK_CHECKSUM, "UNI-USD-SWAP")


def test_two_updates_swapped_are_caught_by_the_checksum(frames):
    k, following = update_positions(frames, "BTC-USD-220527")[30:32]
    faulty = list(frames)
    faulty[k], faulty[following] = faulty[following], faulty[k]
    assert_caught_then_resynced(frames, faulty, BOOK_CHECKSUM, "BTC-USD-220527")


def test_a_malformed_update_is_quarantined_and_the_book_goes_out_of_sync(frames):
    k = update_positions(frames, "BTC-USDT")[3]
    message = orjson.loads(frames[k][1])
    message["data"][0]["bids"] = [["not a price", "1", "0", "1"]]
    faulty = [*frames[:k], (frames[k][0], orjson.dumps(message)), *frames[k + 1 :]]
    _, records = run(faulty)
    (rejected,) = [r for r in records if type(r) is Reject]
    assert rejected.reason == "mistyped field 'bids': expected [price, size, ...] strings"
    assert rejected.symbol == "BTC-USDT"
    assert [e.kind for e in events(records)] == [BOOK_BAD_UPDATE]


def test_updates_before_the_first_snapshot_are_skipped_without_output(frames):
    first_update = update_positions(frames, "BTC-USDT")[0]
    parser, records = run([frames[first_update]])
    assert records == []
    assert parser.books.books == {}


def test_resubscribing_asks_okx_for_a_fresh_snapshot_of_one_instrument():
    unsubscribe, subscribe = map(orjson.loads, resubscribe("BTC-USDT"))
    assert unsubscribe == {
        "op": "unsubscribe",
        "args": [{"channel": "books", "instId": "BTC-USDT"}],
    }
    assert subscribe["op"] == "subscribe" and subscribe["args"] == unsubscribe["args"]


# --- seqId / prevSeqId: the recording predates them, so they are numbered in by hand --------


def numbered(frames: Frames, step: int = 3) -> Frames:
    """The real session with ``seqId``/``prevSeqId`` added as OKX sends them today
    (hand-added: ids grow by ``step`` per message, a snapshot's ``prevSeqId`` is -1)."""
    last: dict[str, int] = {}
    out = []
    for received_at_us, frame in frames:
        message = orjson.loads(frame)
        instrument, data = message["arg"]["instId"], message["data"][0]
        previous = last.get(instrument, 1000) if message["action"] == "update" else -1
        data["prevSeqId"] = previous
        data["seqId"] = last[instrument] = (previous if previous > 0 else 1000) + step
        out.append((received_at_us, orjson.dumps(message)))
    return out


def test_sequence_ids_that_chain_are_accepted_and_carried_into_depth(frames):
    parser, records = run(numbered(frames))
    assert events(records) == [] and parser.books.verified == 195
    last = depths(records, "BTC-USDT")[-1]
    assert last.last_update_id == parser.books.books["BTC-USDT"].sequence


def test_a_dropped_update_is_caught_by_its_sequence_id_before_the_checksum(frames):
    chained = numbered(frames)
    k = update_positions(frames, "BTC-USDT")[10]
    dropped_prev = orjson.loads(chained[k][1])["data"][0]["prevSeqId"]
    _, records = run(chained[:k] + chained[k + 1 :])
    (event,) = events(records)
    assert (event.kind, event.expected, event.got) == (BOOK_GAP, dropped_prev, dropped_prev + 3)


def no_change(frame: bytes) -> bytes:
    """OKX's keep-alive for a quiet book: no levels, ``seqId == prevSeqId`` = the last seqId."""
    message = orjson.loads(frame)
    data = message["data"][0]
    data["asks"], data["bids"] = [], []
    data["prevSeqId"] = data["seqId"]
    return orjson.dumps(message)


def test_a_no_change_message_with_equal_sequence_ids_keeps_the_book_in_sync(frames):
    chained = numbered(frames)
    k = update_positions(frames, "BTC-USDT")[10]
    quiet = (chained[k][0], no_change(chained[k][1]))
    parser, records = run([*chained[: k + 1], quiet, *chained[k + 1 :]])
    assert events(records) == []
    assert parser.books.verified == 196
    assert len(depths(records, "BTC-USDT")) == 66  # the quiet message changes nothing


def test_a_sequence_reset_after_maintenance_is_accepted(frames):
    chained = numbered(frames)
    positions = update_positions(frames, "BTC-USDT")
    reset = []
    seq = None
    for i, (received_at_us, frame) in enumerate(chained):
        message = orjson.loads(frame)
        if i in positions[20:]:
            data = message["data"][0]
            if seq is None:
                seq = 5  # smaller than prevSeqId, as after OKX maintenance
            else:
                data["prevSeqId"] = seq
                seq += 1
            data["seqId"] = seq
            frame = orjson.dumps(message)
        reset.append((received_at_us, frame))
    parser, records = run(reset)
    assert events(records) == []
    assert parser.books.books["BTC-USDT"].sequence == 5 + len(positions[21:])


def test_only_book_frames_of_the_recording_are_needed_to_rebuild_the_books():
    everything = received_frames(OKX_SESSION)
    parser, records = run(everything)
    assert parser.books.verified == 195 and events(records) == []
