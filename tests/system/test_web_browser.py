"""`azjobs web` in a real browser (Debian's headless chromium through Selenium) against a live `azjobs run`
of tic-tac-toe: the page shows gpu-serve and the trainer with their devices, a version table that grows,
a self-play game replayed to the shard's own positions, and a game played to the end through clicks.

With AZJOBS_WEB_SCREENSHOTS=DIR it also saves the screenshots of docs/web.md there.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from azjobs.games import get_game
from azjobs.storage.replay import replay_dir
from azjobs.storage.shards import read_shard
from azjobs.web import boards

pytestmark = pytest.mark.system

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
AZJOBS = [sys.executable, "-m", "azjobs"]
TINY = [  # as small as a run gets: one worker, a network of 8 channels, 4 simulations, a version per 10 steps
    "--workers", "1", "--net-blocks", "1", "--net-channels", "8", "--num-simulations", "4",
    "--games-per-job", "8", "--temperature-moves", "2", "--min-replay-positions", "100",
    "--replay-buffer-size", "5000", "--batch-size", "32", "--publish-every-steps", "10",
    "--max-train-per-position", "8", "--eval-every-versions", "5", "--eval-games", "4", "--eval-simulations", "4",
]  # fmt: skip
GAME = get_game("tictactoe")


def _missing() -> str | None:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return (
            f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
            "apt-get install chromium chromium-driver"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (pip install -e '.[test]')"
    return None


def wait_until(what: str, check: Callable[[], Any], timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            found = check()
        except Exception:  # the page is still drawing: an element is missing or replaced, a fetch is in flight
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_run(tmp_path: Path) -> Iterator[Path]:
    run_dir = tmp_path / "ttt"
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen(
        [*AZJOBS, "run", "--game", "tictactoe", "--max-steps", "100000", "--run-dir", str(run_dir), *TINY],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield run_dir
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def page_url(live_run: Path, tmp_path: Path) -> Iterator[str]:
    wait_until("the run's settings", lambda: (live_run / "settings.toml").exists())
    port = free_port()
    log = open(tmp_path / "web.log", "wb")
    proc = subprocess.Popen(
        [*AZJOBS, "web", "--run-dir", str(live_run), "--port", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until("the web server", lambda: urllib.request.urlopen(url + "api/info", timeout=5).status == 200, 60)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing:
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    flags = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,2400")
    for flag in flags:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def grid(driver: Any, board_id: str) -> list[list[int]]:
    return json.loads(driver.find_element("id", board_id).get_attribute("data-grid"))


def rows(driver: Any, selector: str) -> list[Any]:
    return driver.find_elements("css selector", selector)


def test_the_page_against_a_live_run(browser: Any, page_url: str, live_run: Path) -> None:
    shots = os.environ.get("AZJOBS_WEB_SCREENSHOTS")
    browser.get(page_url)
    assert wait_until("the run's name", lambda: browser.find_element("id", "run-name").text == "ttt")

    # The machines: gpu-serve and the trainer, each with the device it runs on (this machine's CPU, or a GPU).
    def devices() -> dict[str, str]:
        found = {
            r.get_attribute("data-role"): r.find_element("css selector", "td.device").text
            for r in rows(browser, "#machines tbody tr")
        }
        ready = {"gpu-serve", "trainer", "worker"} <= set(found) and "step" in _figures(browser, "trainer")
        return found if ready else {}

    found = wait_until("gpu-serve, the trainer and a worker in the machines table", devices)
    for role in ("gpu-serve", "trainer"):
        assert found[role] == "cpu" or "cuda" in found[role], found

    # The networks: the table of versions grows while the run trains.
    first = wait_until("a version in the table", lambda: len(rows(browser, "#versions tbody tr")))
    wait_until("the version table growing", lambda: len(rows(browser, "#versions tbody tr")) > first, 240)

    # Games: the newest self-play game, replayed to its end, matches the shard's positions.
    item = wait_until("a self-play game", lambda: rows(browser, "#selfplay-games li[data-id]")[0])
    shard, _, index = item.get_attribute("data-id").rpartition(":")
    item.click()
    wait_until("the replay", lambda: "move" in browser.find_element("id", "replay-step").text)
    records = read_shard(replay_dir(live_run) / shard, game="tictactoe", planes_shape=GAME.planes_shape, num_actions=9)
    rows_of_game = boards.game_slices(records)[int(index)]
    last = rows_of_game.stop - 1
    stored = boards.board_of_planes(records.planes[last], (last - rows_of_game.start) % 2)  # X moves on even plies
    final = grid(browser, "replay-board")
    browser.find_element("id", "replay-prev").click()
    assert grid(browser, "replay-board") == stored  # the shard's last position, one move before the end
    assert sum(v != 0 for row in final for v in row) == sum(v != 0 for row in stored for v in row) + 1
    browser.find_element("id", "replay-last").click()
    if shots:  # a few rated versions first, so the chart shows something
        rated = "#versions tbody tr td:nth-child(5)"
        wait_until("rated versions", lambda: sum(c.text != "-" for c in rows(browser, rated)) >= 4, 300)
        browser.find_element("id", "replay-last").click()
        for section in ("machines", "run", "networks", "games"):
            screenshot(browser, section, Path(shots))

    # Play: a game against the newest network, to the end, through clicks on empty cells.
    browser.find_element("id", "play-new").click()
    wait_until("the game to start", lambda: "your move" in browser.find_element("id", "play-status").text)
    for _ in range(9):
        board = browser.find_element("id", "play-board")
        if board.get_attribute("data-over") == "yes":
            break
        moves_before = browser.find_element("id", "play-moves").text
        empty = rows(browser, '#play-board rect.cell[data-v="0"]')
        empty[0].click()
        wait_until(
            "the network's reply",
            lambda: (
                browser.find_element("id", "play-moves").text != moves_before
                and "thinking" not in browser.find_element("id", "play-status").text
            ),
        )
    assert browser.find_element("id", "play-board").get_attribute("data-over") == "yes"
    status = browser.find_element("id", "play-status").text
    assert status.startswith("game over:") and ("won" in status or "draw" in status), status
    if shots:
        screenshot(browser, "play", Path(shots))


def screenshot(driver: Any, section: str, folder: Path) -> None:
    element = driver.find_element("id", f"{section}-section")
    driver.execute_script("arguments[0].scrollIntoView()", element)
    element.screenshot(str(folder / f"web-{section}.png"))


def _figures(driver: Any, role: str) -> str:
    for r in rows(driver, "#machines tbody tr"):
        if r.get_attribute("data-role") == role:
            return str(r.find_element("css selector", "td.figures").text)
    return ""
