"""`daguerre up` gives each of its workers a health and metrics port of its own, or none."""

from __future__ import annotations

from pathlib import Path

import pytest

from daguerre.config import PoolSettings, Settings
from daguerre.launcher import Child, Launcher

PORT_ENV = "DAGUERRE_WORKER_METRICS_PORT"


def worker_ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **values: object) -> list[object]:
    monkeypatch.setattr(Child, "start", lambda self: None)  # nothing is run
    monkeypatch.delenv(PORT_ENV, raising=False)
    pools = {"chat": PoolSettings(processes=2), "api": PoolSettings(processes=1)}
    launcher = Launcher(Settings(data_dir=tmp_path, pools=pools, **values))  # type: ignore[arg-type]
    launcher._start_children("127.0.0.1:7233")
    workers = [c for c in launcher.children if c.name.startswith("worker")]
    assert len(workers) == 3 and launcher.children[0].name == "gateway"
    assert PORT_ENV not in launcher.children[0].env  # the gateway serves its own /metrics
    return [c.env.get(PORT_ENV) for c in workers]


def test_no_endpoint_unless_the_setting_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert worker_ports(tmp_path, monkeypatch) == [None, None, None]


def test_each_worker_gets_the_next_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ports = worker_ports(tmp_path, monkeypatch, worker_metrics_port=9464)
    assert ports == ["9464", "9465", "9466"]


def test_port_zero_gives_each_a_free_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert worker_ports(tmp_path, monkeypatch, worker_metrics_port=0) == ["0", "0", "0"]
