"""Headless Chromium for the tests that check what a person sees (the unsubscribe pages,
the local dashboard): Debian's `chromium` package, which `make test` installs when missing."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("headless Chromium is not installed (apt-get install -y chromium)")


def browse(url: str, screenshot: Path, window_size: str = "720,480") -> str:
    """The DOM Chromium rendered for `url`, and a screenshot of it."""
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={window_size}",
            "--no-first-run", "--disable-dev-shm-usage"]
    subprocess.run([*base, f"--screenshot={screenshot}", url], check=True, capture_output=True, timeout=120)
    dom = subprocess.run([*base, "--dump-dom", url], check=True, capture_output=True, timeout=120, text=True)
    assert screenshot.stat().st_size > 2000  # a rendered page, not an empty image
    return dom.stdout
