"""A broken book asks for a fresh snapshot once, again if none comes, and stops once back."""

from __future__ import annotations

import orjson

from marketlake.exchanges.book import BOOK_GAP, BOOK_RESYNCED, BookEvent
from marketlake.exchanges.feed import Send, feed_for
from marketlake.exchanges.okx.books import checksum

BIDS = [["100.5", "2", "0", "1"], ["100", "1", "0", "1"]]
ASKS = [["101", "3", "0", "1"]]
SECOND = 1_000_000


def okx_book(action: str, seq_id: int, prev_seq_id: int) -> bytes:
    crc = checksum([tuple(b[:2]) for b in BIDS], [tuple(a[:2]) for a in ASKS])
    item = {
        "asks": ASKS if action == "snapshot" else [],
        "bids": BIDS if action == "snapshot" else [],
    }
    item |= {"ts": "1700000000000", "checksum": crc, "prevSeqId": prev_seq_id, "seqId": seq_id}
    arg = {"channel": "books", "instId": "BTC-USDT"}
    return orjson.dumps({"arg": arg, "action": action, "data": [item]})


def sends(records: list) -> list[list[dict]]:
    return [[orjson.loads(m) for m in r.messages] for r in records if type(r) is Send]


def test_okx_resubscribes_a_broken_book_again_only_while_no_snapshot_comes() -> None:
    parser = feed_for("okx").parser(["BTC-USDT"])
    assert sends(parser.parse(okx_book("snapshot", 10, -1), 0)) == []
    broken = parser.parse(okx_book("update", 12, 11), SECOND)  # 11 never came
    assert [r.kind for r in broken if type(r) is BookEvent] == [BOOK_GAP]
    [first] = sends(broken)
    assert [m["op"] for m in first] == ["unsubscribe", "subscribe"]
    assert first[1]["args"] == [{"channel": "books", "instId": "BTC-USDT"}]
    assert sends(parser.parse(okx_book("update", 13, 12), 3 * SECOND)) == []  # still waiting
    assert len(sends(parser.parse(okx_book("update", 14, 13), 7 * SECOND))) == 1  # ask again
    back = parser.parse(okx_book("snapshot", 20, -1), 8 * SECOND)
    assert [r.kind for r in back if type(r) is BookEvent] == [BOOK_RESYNCED]
    assert sends(parser.parse(okx_book("update", 21, 20), 20 * SECOND)) == []
    assert parser.resubscriptions.retries == 1  # type: ignore[attr-defined]


def test_deribit_resubscribes_the_book_whose_change_ids_stopped_chaining() -> None:
    parser = feed_for("deribit").parser(["BTC-PERPETUAL"])
    channel = "book.BTC-PERPETUAL.raw"

    def push(data: dict) -> bytes:
        data = {"timestamp": 1700000000000, "instrument_name": "BTC-PERPETUAL", **data}
        params = {"channel": channel, "data": {"bids": [], "asks": [], **data}}
        return orjson.dumps({"jsonrpc": "2.0", "method": "subscription", "params": params})

    parser.parse(push({"type": "snapshot", "change_id": 5}), 0)
    records = parser.parse(push({"type": "change", "change_id": 9, "prev_change_id": 7}), SECOND)
    [messages] = sends(records)
    assert [(m["method"], m["params"]["channels"]) for m in messages] == [
        ("public/unsubscribe", [channel]),
        ("public/subscribe", [channel]),
    ]
    assert messages[0]["id"] != messages[1]["id"]
