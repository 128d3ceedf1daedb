"""Fetching a venue's instrument list: the I/O half of `marketlake.instrument_specs`.

The registry names each venue's list (`marketlake.exchanges.registry.InstrumentList`: the
paths, the parser, the base URL and the setting that moves it); this asks for every path
and parses each answer. A failure names the venue and the URL, and nothing half-read is
returned: either every path answered and parsed, or `InstrumentListError`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from marketlake.exchanges.registry import Venue, venue
from marketlake.instrument_specs import InstrumentListError, InstrumentSpec


def instrument_list_url(chosen: Venue, base_url: str | None = None) -> str:
    """The base URL of ``chosen``'s list: ``base_url``, else the venue's production URL.

    The environment is not read here (`orchestration/settings.py` is the one place that
    does): a caller that wants the simulator or a proxy passes its URL.
    """
    if base_url:
        return base_url.rstrip("/")
    source = chosen.instruments
    if source is not None and source.base is not None:
        return source.base.rstrip("/")
    if chosen.rest is None:
        raise InstrumentListError(f"{chosen.title} has no REST endpoint for its instruments")
    return chosen.rest.default.rstrip("/")


def fetch_instruments(
    name: str,
    base_url: str | None = None,
    *,
    client: httpx.Client | None = None,
    timeout_s: float = 10.0,
) -> list[InstrumentSpec]:
    """Every spot, perpetual and future instrument the venue ``name`` lists."""
    chosen = venue(name)
    source = chosen.instruments
    if source is None:
        raise InstrumentListError(f"{chosen.title} declares no instrument list")
    base = instrument_list_url(chosen, base_url)
    parser = _parser(source.parser)
    owned = client is None
    http = client or httpx.Client(timeout=timeout_s)
    try:
        found: list[InstrumentSpec] = []
        for path in source.paths:
            found += parser(_get(http, f"{base}{path}", chosen.title))
        return found
    finally:
        if owned:
            http.close()


def _get(http: httpx.Client, url: str, title: str) -> Mapping[str, Any]:
    try:
        response = http.get(url)
    except httpx.HTTPError as error:
        raise InstrumentListError(f"{title} instrument list {url}: {error!r}") from error
    if response.status_code != 200:
        raise InstrumentListError(
            f"{title} instrument list {url}: HTTP {response.status_code}: {response.text[:200]!r}"
        )
    try:
        payload = response.json()
    except ValueError as error:
        raise InstrumentListError(f"{title} instrument list {url}: not JSON") from error
    if not isinstance(payload, Mapping):
        raise InstrumentListError(f"{title} instrument list {url}: expected a JSON object")
    return payload


def _parser(reference: str) -> Callable[[Mapping[str, Any]], list[InstrumentSpec]]:
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)
