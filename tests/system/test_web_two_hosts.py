"""`azjobs web` for a run on two hosts in network namespaces (started with the cluster scripts, as in
tests/system/test_two_hosts.py): the head holds Redis and a worker, the GPU host, under a long host name,
gpu-serve and the trainer and mounts the storage root at another path. The GPU host serves the page
beyond loopback with a password (and refuses to without one); the head reads the page and its JSON
with the password, and is refused without it; where Debian's chromium is installed, it loads the page
there in a browser too. Skips, saying why, where namespaces cannot be made."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
from pathlib import Path

import pytest
from crosshost import URL, Cluster, alive, wait_until
from netns import HEAD_ADDRESS, SCRIPTS, TRAIN, Host, check, env_for, make_hosts

pytestmark = pytest.mark.system

# The GPU host's name is azj-<this>-<tag>: 58 characters, near Linux's 64.
LONG_ROLE = "gpu-node-0042.rack-b17.training-cluster.example"
PORT = 8080
TRAINED_WITHIN_S = 300  # generous: two shared cores train, play and serve the page
# Run in a host's namespace: GETs each path of argv[2:] under the base URL argv[1], with the password
# in $WEB_AUTH as basic auth (user azjobs) when $WEB_MODE is `basic`, as ?token= when `query`, else
# none; prints {path: [status, body, set-cookie]} (status 0: no answer).
FETCH = """
import base64, json, os, sys, urllib.error, urllib.parse, urllib.request
base, paths, mode, auth = sys.argv[1], sys.argv[2:], os.environ.get("WEB_MODE", ""), os.environ.get("WEB_AUTH", "")
out = {}
for path in paths:
    url = base + path
    if mode == "query":
        url += ("&" if "?" in url else "?") + "token=" + urllib.parse.quote(auth)
    request = urllib.request.Request(url)
    if mode == "basic":
        request.add_header("Authorization", "Basic " + base64.b64encode(("azjobs:" + auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            out[path] = [r.status, r.read().decode(), r.headers.get("Set-Cookie") or ""]
    except urllib.error.HTTPError as e:
        out[path] = [e.code, e.read().decode(), ""]
    except OSError as e:
        out[path] = [0, str(e), ""]
print(json.dumps(out))
"""
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# Run in a host's namespace: loads the page argv[1] (?token=$WEB_AUTH) in headless chromium until the
# machines table shows gpu-serve, the trainer and a worker alive (at most argv[3] seconds), saves a
# screenshot to argv[2], and prints {rows: [[role, host, state]], layout: {window width: [the page's
# width, the window's, the machines table's, its box's]}}.
BROWSE = """
import json, os, sys, time
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
url, shot, wait_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1200"):
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
ROWS = "return Array.from(document.querySelectorAll('#machines tbody tr'), (tr) => [tr.dataset.role, " \\
    "tr.cells[1].textContent, tr.cells[3].textContent])"
LAYOUT = "const box = document.querySelector('#machines-section .wide'); return [" \\
    "document.documentElement.scrollWidth, window.innerWidth, box.scrollWidth, box.clientWidth]"
try:
    driver.get(url + "?token=" + os.environ["WEB_AUTH"])
    deadline, rows = time.monotonic() + wait_s, []
    while time.monotonic() < deadline:
        rows = driver.execute_script(ROWS)
        if {"gpu-serve", "trainer", "worker"} <= {role for role, _, state in rows if state == "alive"}:
            break
        time.sleep(1)
    layout = {}
    for width in (1280, 800):
        driver.set_window_size(width, 1200)
        time.sleep(1)
        layout[width] = driver.execute_script(LAYOUT)
    driver.save_screenshot(shot)
    print(json.dumps({"rows": rows, "layout": layout}))
finally:
    driver.quit()
"""


def fetch(cluster: Cluster, reader: Host, base: str, *paths: str, mode: str, auth: str) -> dict[str, list]:
    """GET `paths` under `base` from `reader`'s namespace (FETCH)."""
    env = cluster.env(reader, WEB_MODE=mode, WEB_AUTH=auth)
    return json.loads(check(reader.run([sys.executable, "-c", FETCH, base, *paths], env, timeout_s=120)).stdout)


class Page:
    """The page as the head sees it: `azjobs web` served by `server` on its own address."""

    def __init__(self, cluster: Cluster, reader: Host, server: Host, password: str) -> None:
        self.cluster, self.reader, self.password = cluster, reader, password
        self.base = f"http://{server.address}:{PORT}"

    def get(self, *paths: str, mode: str = "basic", auth: str | None = None) -> dict[str, list]:
        return fetch(
            self.cluster, self.reader, self.base, *paths, mode=mode, auth=self.password if auth is None else auth
        )

    def json(self, path: str) -> dict:
        status, body, _ = self.get(path)[path]
        assert status == 200, f"{path}: {status} {body}"
        return json.loads(body)


def serve(cluster: Cluster, host: Host, run_dir: Path, password_file: Path, log: Path) -> int:
    """`azjobs web` on `host`'s own address, left running in its namespace; returns its pid."""
    pidfile = log.with_suffix(".pid")
    command = [
        "sh",
        "-c",
        f'"$0" -m azjobs web --run-dir "$1" --bind "$2" --port {PORT} --password-file "$3" >"$4" 2>&1 & echo $! >"$5"',
        sys.executable,
        str(run_dir),
        host.address,
        str(password_file),
        str(log),
        str(pidfile),
    ]
    check(host.run(command, cluster.env(host)))
    return int(pidfile.read_text())


def alive_roles(overview: dict) -> set[tuple[str, str]]:
    return {(m["role"], m["host"]) for m in overview["machines"] if m["state"] == "alive"}


def test_the_page_of_a_two_machine_run(tmp_path: Path, storage: Path) -> None:
    with make_hosts(tmp_path, LONG_ROLE) as (head, gpu):
        assert len(gpu.name) > 50
        gpu_mount = tmp_path / "gpu-mnt"
        gpu_mount.symlink_to(storage)  # the GPU host mounts the same storage root elsewhere
        cluster = Cluster(head, storage)
        # The head's Redis and rq-dashboard on its own address (the dashboard then wants the Redis password).
        start = [str(SCRIPTS / "start_head.sh"), "--bind", HEAD_ADDRESS, "--dashboard-bind", HEAD_ADDRESS]
        check(head.run(start, env_for(head)))
        cluster.password = (head.state / "redis.password").read_text().strip()
        web_pid = 0
        try:
            cluster.start_gpu(gpu, gpu_mount / "tt", *TRAIN)
            cluster.start_workers(head, cluster.run_dir, 1)
            wait_until(lambda: (cluster.run_dir / "settings.toml").exists(), "the trainer to create the run", 120)

            # Beyond loopback without a password: refused, in one line that names the fix.
            web = [sys.executable, "-m", "azjobs", "web", "--run-dir", str(gpu_mount / "tt")]
            refused = gpu.run([*web, "--bind", gpu.address, "--port", str(PORT)], cluster.env(gpu), timeout_s=120)
            assert refused.returncode != 0
            assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
            assert f"refusing to serve the web page on {gpu.address} without a password" in refused.stderr
            assert "--password-file" in refused.stderr

            password = secrets.token_urlsafe(16)
            password_file = tmp_path / "web.password"
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
            web_log = tmp_path / "web.log"
            web_pid = serve(cluster, gpu, gpu_mount / "tt", password_file, web_log)
            page = Page(cluster, head, gpu, password)
            wait_until(lambda: page.get("/api/info")["/api/info"][0] == 200, "the page to answer the head", 120)
            check_the_password(page)
            check_the_links(page, head, gpu)
            check_the_page(page, gpu, head)
            check_status_shows_long_names(cluster, head, gpu)
            check_in_a_browser(page, head, gpu, tmp_path / "page.png")
        finally:
            if web_pid and alive(web_pid):
                os.kill(web_pid, signal.SIGTERM)
            cluster.stop(gpu)
            cluster.stop(head)
        assert password not in web_log.read_text() and cluster.password not in web_log.read_text()


def check_the_password(page: Page) -> None:
    """Every route wants the password: none, or a wrong one, is refused; basic auth and ?token= pass."""
    routes = ("/", "/api/info", "/api/overview", "/api/networks", "/api/games", "/static/app.js")
    for mode, auth in (("none", ""), ("basic", "not-the-password"), ("query", "not-the-password")):
        for path, (status, body, _) in page.get(*routes, mode=mode, auth=auth).items():
            assert status == 401, f"{path} without the password ({mode}): {status}"
            assert "password required" in body
    for path, (status, _, _) in page.get(*routes).items():
        assert status == 200, f"{path} with the password: {status}"
    status, body, cookie = page.get("/", mode="query")["/"]
    assert status == 200 and 'id="machines"' in body
    assert cookie.startswith("azjobs_token=") and "HttpOnly" in cookie  # the page's own requests carry it


def check_the_links(page: Page, head: Host, gpu: Host) -> None:
    """rq-dashboard linked where it runs, beside the run's Redis on the head (not on the page's host, nor
    on anyone's loopback), and answering there to another machine; TensorBoard on the page's host."""
    info = page.json("/api/info")
    assert info["dashboard_url"] == f"http://{head.address}:9181/"
    assert info["tensorboard_url"] == f"http://{gpu.address}:6006/"
    found = fetch(page.cluster, gpu, info["dashboard_url"].rstrip("/"), "/", mode="basic", auth=page.cluster.password)
    assert found["/"][0] == 200 and "rq" in found["/"][1].lower()
    refused = fetch(page.cluster, gpu, info["dashboard_url"].rstrip("/"), "/", mode="none", auth="")
    assert refused["/"][0] == 401


def check_the_page(page: Page, gpu: Host, head: Host) -> None:
    """Processes of both hosts with their full host names, a version table that grows, and a self-play
    game replayed from the storage root as the GPU host mounts it."""
    info = page.json("/api/info")
    assert info["run"] == "tt" and info["game"] == "tictactoe"
    assert info["run_dir"].endswith("/gpu-mnt/tt")  # the folder as the serving host mounts it

    everyone = {("worker", head.name), ("trainer", gpu.name), ("gpu-serve", gpu.name)}

    def everyone_on_the_page() -> dict | None:
        found = page.json("/api/overview")
        return found if alive_roles(found) >= everyone else None

    overview = wait_until(
        everyone_on_the_page,
        "gpu-serve and the trainer (GPU host) and a worker (head) on the page",
        TRAINED_WITHIN_S,
    )
    assert isinstance(overview, dict) and overview["redis"] is True
    for m in overview["machines"]:
        if m["state"] == "alive" and m["role"] in ("trainer", "gpu-serve"):
            assert m["host"] == gpu.name and m["id"].startswith(gpu.name + "-"), m
            assert m["device"] == "cpu" and m["cpu"] != "" and m["memory"] != ""

    first = wait_until(lambda: len(page.json("/api/networks")["versions"]), "a version in the table", TRAINED_WITHIN_S)
    assert isinstance(first, int)
    wait_until(
        lambda: len(page.json("/api/networks")["versions"]) > first, "the version table to grow", TRAINED_WITHIN_S
    )
    versions = page.json("/api/networks")["versions"]
    assert [v["version"] for v in versions] == sorted(v["version"] for v in versions)

    games = wait_until(lambda: page.json("/api/games")["selfplay"], "a self-play game", TRAINED_WITHIN_S)
    assert isinstance(games, list)
    replay = page.json(f"/api/game/selfplay/{games[0]['id']}")
    assert len(replay["boards"]) == games[0]["moves"] + 1


def check_status_shows_long_names(cluster: Cluster, head: Host, gpu: Host) -> None:
    """`azjobs status` on the head prints the GPU host's long name whole, on a wide terminal and a narrow one
    (there folded over lines: the cells joined again hold it)."""
    command = [sys.executable, "-m", "azjobs", "status", "--redis-url", URL, "--run-dir", str(cluster.run_dir)]
    wide = check(head.run(command, cluster.env(head, COLUMNS="200"))).stdout
    assert gpu.name in wide and "\u2026" not in wide, wide
    narrow = check(head.run(command, cluster.env(head, COLUMNS="80"))).stdout
    assert "\u2026" not in narrow, narrow
    joined = "".join(part.strip() for line in narrow.splitlines() for part in line.split("│")[2:3])
    assert gpu.name in joined, narrow


def check_in_a_browser(page: Page, head: Host, gpu: Host, shot: Path) -> None:
    """Where Debian's chromium is: the page in headless chromium on the head shows both hosts' processes
    under their full names, and the long name widens neither the page nor, at 1280 pixels, the table."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return  # HTTP and JSON alone, above (tests/system/test_web_browser.py says what to install)
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return
    env = page.cluster.env(head, WEB_AUTH=page.password)
    done = check(head.run([sys.executable, "-c", BROWSE, page.base + "/", str(shot), "120"], env, timeout_s=300))
    found = json.loads(done.stdout)
    alive_rows = {(role, host) for role, host, state in found["rows"] if state == "alive"}
    assert {("gpu-serve", gpu.name), ("trainer", gpu.name), ("worker", head.name)} <= alive_rows, found
    for width, (page_width, window, table, box) in found["layout"].items():
        assert page_width <= window, f"the page scrolls sideways at {width} px: {found['layout']}"
        if width == "1280":
            assert table <= box, f"the machines table is wider than its section at {width} px: {found['layout']}"
