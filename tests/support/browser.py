"""Headless Chromium for the UI tests: Debian's own build, driven by Playwright.

Playwright normally downloads a browser build of its own; these machines cannot, so the
test points it at `/usr/bin/chromium` (Debian's `chromium` package, which `.ci/run`
installs) with a fresh profile and everything that would phone home turned off.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]

#: How long an action or an expectation waits for the page by default: Dagster's pages load
#: their data after they render, on a machine that may be busy with the daemon's runs.
DEFAULT_WAIT_MS = 60_000


def artifacts_dir(name: str) -> Path:
    """`$MARKETLAKE_ARTIFACTS/NAME` (default tests/e2e/artifacts/NAME, git-ignored), emptied."""
    base = Path(os.environ.get("MARKETLAKE_ARTIFACTS") or ROOT / "tests" / "e2e" / "artifacts")
    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


def require_chromium() -> None:
    """Fail, never skip: a UI test that silently does not run hides a broken UI."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"the browser test needs Debian's Chromium at {CHROMIUM}: "
            "`apt-get install chromium` (.ci/run installs it where it is missing)"
        )


@contextmanager
def chromium_page(artifacts: Path) -> Iterator[Page]:
    """A page in a fresh headless Chromium profile; a screenshot `failed.png` if the test fails."""
    require_chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1600, "height": 1000},
        )
        context.set_default_timeout(DEFAULT_WAIT_MS)
        expect.set_options(timeout=DEFAULT_WAIT_MS)
        page = context.new_page()
        # Dagster greets a new browser profile with a "Join the Dagster community" dialog
        # over whatever page is open; a user dismisses it, and so does the test, whenever
        # it shows up.
        page.add_locator_handler(
            page.get_by_role("button", name="Skip", exact=True), lambda skip: skip.click()
        )
        try:
            yield page
        except BaseException:
            page.screenshot(path=artifacts / "failed.png", full_page=True)
            raise
        finally:
            context.close()


class Steps:
    """Numbered steps of a walk through the UI, each ending in a screenshot kept as artifact."""

    def __init__(self, page: Page, artifacts: Path) -> None:
        self.page = page
        self.artifacts = artifacts
        self.taken: list[Path] = []

    def shot(self, name: str) -> Path:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        path = self.artifacts / f"{len(self.taken) + 1:02d}-{slug}.png"
        self.page.screenshot(path=path)
        self.taken.append(path)
        return path
