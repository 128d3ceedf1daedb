"""The exchange-neutral book and its resync policy (hand-built levels, labelled as such)."""

from __future__ import annotations

import orjson

from marketlake.exchanges.book import (
    BOOK_CHECKSUM,
    BOOK_GAP,
    BOOK_RESYNCED,
    Book,
    SyncedBook,
    depth_record,
)


def hand_built_book() -> Book:
    book = Book()
    for price, size in [(100.0, 1.0), (99.5, 2.0), (99.0, 3.0), (98.0, 4.0)]:
        book.bids.set(price, size)
    for price, size in [(101.0, 1.5), (102.0, 2.5), (100.5, 0.5)]:
        book.asks.set(price, size)
    return book


def test_top_levels_read_best_first_on_each_side():
    book = hand_built_book()
    assert book.bids.top(2) == ([100.0, 99.5], [1.0, 2.0])
    assert book.asks.top(2) == ([100.5, 101.0], [0.5, 1.5])
    assert book.bids.top(10) == ([100.0, 99.5, 99.0, 98.0], [1.0, 2.0, 3.0, 4.0])


def test_a_size_of_zero_deletes_the_level_and_a_new_size_replaces_it():
    book = hand_built_book()
    book.bids.set(100.0, 0.0)
    book.asks.set(101.0, 7.0)
    book.asks.set(555.0, 0.0)  # deleting a level that is not there is no error
    assert book.bids.top(1) == ([99.5], [2.0])
    assert book.asks.levels() == [(100.5, 0.5), (101.0, 7.0), (102.0, 2.5)]
    assert len(book) == 6


def test_a_side_keeping_texts_returns_the_strings_each_level_was_last_sent_with():
    book = Book(keep_text=True)
    book.asks.set(0.1, 2.0, ("0.1", "2"))
    book.asks.set(0.1, 2.0, ("0.10", "2.0"))  # the same level, sent again in another form
    book.asks.set(0.2, 1.0, ("0.2", "1"))
    book.asks.set(0.2, 0.0, ("0.2", "0"))
    assert book.asks.top_texts(25) == [("0.10", "2.0")]


def test_the_depth_record_holds_the_top_levels_best_first():
    depth = depth_record(hand_built_book(), "X", 5, 6, 42, levels=3)
    assert depth.bid_prices == [100.0, 99.5, 99.0]
    assert depth.ask_prices == [100.5, 101.0, 102.0]
    assert depth.ask_qtys == [0.5, 1.5, 2.5]
    assert (depth.symbol, depth.ts_us, depth.received_at_us, depth.last_update_id) == (
        "X",
        5,
        6,
        42,
    )


def test_a_book_gives_no_depth_before_its_first_snapshot():
    synced = SyncedBook("venue", "X")
    synced.skip()
    assert synced.depth(1, 1) is None
    assert synced.resynced(1) is None  # the first snapshot is no resync


def test_a_broken_book_is_emptied_gives_no_depth_and_says_what_was_lost():
    synced = SyncedBook("venue", "X")
    book = synced.reset(10)
    book.bids.set(1.0, 1.0)
    book.asks.set(2.0, 1.0)
    assert synced.depth(1, 1) is not None

    event = synced.fail(BOOK_GAP, 11, 13, ts_us=7)
    assert (event.kind, event.expected, event.got, event.levels_affected) == (BOOK_GAP, 11, 13, 2)
    assert event.detail()["instrument"] == "X" and event.detail()["venue"] == "venue"
    assert len(synced.book) == 0
    assert synced.depth(2, 2) is None
    synced.skip()
    synced.skip()

    book = synced.reset(20)
    book.bids.set(1.5, 3.0)
    back = synced.resynced(ts_us=9)
    assert back is not None
    assert (back.kind, back.got, back.levels_affected, back.skipped) == (BOOK_RESYNCED, 20, 1, 2)
    assert synced.depth(3, 3) is not None
    assert (synced.failures, synced.resyncs) == (1, 1)


def test_a_snapshot_that_fails_its_own_check_does_not_count_as_a_resync():
    synced = SyncedBook("venue", "X")
    synced.reset(1)
    synced.fail(BOOK_GAP, 2, 3, 0)
    synced.reset(5)
    synced.fail(BOOK_CHECKSUM, 123, 456, 0)  # the fresh snapshot was itself wrong
    assert synced.resynced(0) is None
    assert synced.depth(0, 0) is None


def test_loading_a_snapshot_at_once_gives_the_same_side_as_setting_each_level():
    levels = [(99.0, 3.0), (100.0, 1.0), (98.0, 0.0), (99.5, 2.0), (100.0, 4.0)]
    texts = [(repr(p), repr(s)) for p, s in levels]
    loaded, one_by_one = Book(keep_text=True), Book(keep_text=True)
    loaded.bids.load(levels, texts)
    for (price, size), text in zip(levels, texts, strict=True):
        one_by_one.bids.set(price, size, text)
    assert loaded.state() == one_by_one.state()
    assert loaded.bids.level_texts() == one_by_one.bids.level_texts()
    assert loaded.bids.levels() == [(100.0, 4.0), (99.5, 2.0), (99.0, 3.0)]


def test_an_event_detail_is_the_json_object_stream_events_stores():
    synced = SyncedBook("okx", "BTC-USDT")
    synced.reset(1).asks.set(2.0, 1.0)
    event = synced.fail(BOOK_CHECKSUM, -855196043, 1234, ts_us=1_652_459_226_000_000)
    assert orjson.loads(orjson.dumps(event.detail())) == {
        "venue": "okx",
        "instrument": "BTC-USDT",
        "expected": -855196043,
        "got": 1234,
        "levels_affected": 1,
        "skipped_updates": 0,
        "ts_us": 1_652_459_226_000_000,
    }
