"""Debian's Chromium, headless, driven by Selenium through Debian's chromedriver.

Never a browser that downloads itself: these machines have no internet. If Chromium is missing
the tests that need it fail and say how to install it (`scripts/ensure-browser.sh`, which
`make test` runs, installs it where it may).
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Without these, Chromium tries Google's hosts at start and is refused by the closed network.
QUIET_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--hide-scrollbars")


@contextmanager
def chromium(user_data: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for tool in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: install Debian's chromium and chromium-driver "
                        "(scripts/ensure-browser.sh does, as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in QUIET_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def layout(driver) -> dict:
    """What a reader sees of the page: does it fit the window, did every image load, does any
    preformatted block overflow its box."""
    return driver.execute_script("""
        const doc = document.documentElement;
        const imgs = Array.from(document.images);
        return {
          width: window.innerWidth, scroll_width: doc.scrollWidth,
          images: imgs.length,
          broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
          overflowing: Array.from(document.querySelectorAll('pre, table, img'))
              .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
              .map(e => e.tagName + ': ' + (e.textContent || e.getAttribute('src') || '').slice(0, 60)),
          text: document.body.innerText,
        };""")


def set_viewport(driver, width: int, height: int = 900) -> None:
    """Make the page's viewport (not the window with its frame) this wide."""
    driver.set_window_size(width, height)
    inner = driver.execute_script("return window.innerWidth")
    driver.set_window_size(width + (width - inner), height)
