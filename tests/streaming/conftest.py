"""Fixtures of the streaming tests: the real samples, landers started on threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streaming import StreamConfig, StreamRunner, StreamStats


@pytest.fixture
def samples(real_samples: Path) -> Path:
    return real_samples


class Landing:
    """A `StreamRunner` on a background thread, stopped (and re-raising) on exit."""

    def __init__(self, config: StreamConfig, **options: Any) -> None:
        self.runner = StreamRunner(config, **options)
        self.stats: StreamStats | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="landing", daemon=True)

    def _run(self) -> None:
        try:
            self.stats = self.runner.run()
        except BaseException as error:
            self.error = error

    def __enter__(self) -> Landing:
        self._thread.start()
        return self

    def stop(self) -> StreamStats:
        self.runner.stop()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the lander did not stop"
        if self.error is not None:
            raise self.error
        assert self.stats is not None
        return self.stats

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self.runner.stop()
            self._thread.join(60)


@pytest.fixture
def landing() -> Iterator[Callable[..., Landing]]:
    """Start `StreamRunner`s on threads; whatever is still running is stopped at the end."""
    started: list[Landing] = []

    def start(config: StreamConfig, **options: Any) -> Landing:
        run = Landing(config, **options).__enter__()
        started.append(run)
        return run

    yield start
    for run in started:
        run.__exit__()
