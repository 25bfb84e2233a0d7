"""What `azjobs status` and `azjobs web` show of other machines: host names of up to 64 characters whole in
the machines table at any terminal width, and the rq-dashboard link on the Redis host when that is
another machine."""

from __future__ import annotations

import io
import socket

import pytest
from rich.console import Console

from azjobs.cluster import dashboard
from azjobs.cluster.status import Snapshot, render

HOST = "azj-gpu-node-0042.rack-b17.training-cluster.example.org-abc123"  # 62 characters (Linux allows 64)


def table_text(width: int) -> str:
    processes = [
        {"role": "gpu-serve", "id": f"{HOST}-123456", "host": HOST, "alive": "True", "device": "cuda:0"},
        {"role": "trainer", "id": f"{HOST}-123457", "host": HOST, "alive": "True", "device": "cuda:0"},
        {"role": "worker", "id": "head-77", "host": "head", "alive": "True"},
    ]
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(render(Snapshot("tt", 0.0, {}, {}, 3, {}, processes, 0)))
    return console.export_text()


def column(text: str, index: int) -> str:
    """The cells of one column of the machines table, joined over its lines."""
    return "".join(cells[index].strip() for line in text.splitlines() if len(cells := line.split("│")) > index)


@pytest.mark.parametrize("width", [80, 120, 200])
def test_long_host_names_whole_in_the_status_table(width: int) -> None:
    text = table_text(width)
    assert "\u2026" not in text  # nothing cut short with an ellipsis
    ids = column(text, 2)
    assert f"{HOST}-123456" in ids and f"{HOST}-123457" in ids and "head-77" in ids
    assert column(text, 4).count(HOST) == 2  # the host line under each GPU role's figures
    if width >= 200:
        assert text.count(HOST) == 4  # wide enough: on one line each


def test_the_dashboard_link_names_the_redis_host_when_it_is_another_machine() -> None:
    # RFC 5737 and 3849 documentation addresses: on no machine's interfaces.
    assert dashboard.on_redis_host("redis://:secret@192.0.2.77:6379/0") == "http://192.0.2.77:9181/"
    assert dashboard.on_redis_host("redis://[2001:db8::5]:6379/0") == "http://[2001:db8::5]:9181/"
    assert dashboard.on_redis_host("redis://no-such-host.invalid:6379/0") == "http://no-such-host.invalid:9181/"
    for here in ("redis://127.0.0.1:6379/0", "redis://localhost:6379/0", "unix:///tmp/redis.sock?db=0", None):
        assert dashboard.on_redis_host(here) is None  # the page's own host then


def test_an_address_of_this_machine_is_here() -> None:
    assert dashboard.is_this_machine("127.0.0.1") and dashboard.is_this_machine("localhost")
    assert not dashboard.is_this_machine("192.0.2.77")
    assert not dashboard.is_this_machine("no-such-host.invalid")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.77", 9))  # UDP: sends nothing, picks the address this machine would send from
        except OSError:
            pytest.skip("no route off this machine: no address of it beyond loopback to try")
        address = s.getsockname()[0]
    assert dashboard.is_this_machine(address)
    assert dashboard.on_redis_host(f"redis://{address}:6379/0") is None
