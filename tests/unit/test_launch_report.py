"""The launch rehearsal's report writer (bench/launch_report.py), on synthetic records:
the verdict is computed from the records, and the folder gets its page, plots and
summary. The rehearsal itself (bench/launch.py) is a separate command."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(autouse=True)
def _matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Matplotlib's font cache goes into the test's folder when it is first imported
    here (MPLCONFIGDIR), not into the home directory."""
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))
    pytest.importorskip("matplotlib")


BENCH = Path(__file__).resolve().parents[2] / "bench" / "launch_report.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("launch_report", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("launch_report", module)
    spec.loader.exec_module(module)
    return module


lr = _module()


def _rehearsal(peak_paid_s: float, lose_one: bool = False) -> object:
    phases = [lr.Phase("baseline", 0, 60), lr.Phase("spike", 60, 120), lr.Phase("drain", 120, 150)]
    requests = []
    for i in range(200):
        t = i * 0.6
        phase = "baseline" if t < 60 else "spike"
        done = 0.2 + (i % 10) * 0.01 if phase == "baseline" else peak_paid_s
        requests.append(lr.Request("pro", "p0", t, phase, 202, done_s=done))
        if phase == "spike":
            account = f"f{i % 7}"
            requests.append(lr.Request("free", account, t, phase, 202, deferred=True, done_s=30))
            requests.append(lr.Request("free", account, t, phase, 429, "admission_paced"))
            requests.append(lr.Request("free", "f99", t, phase, 403, "feature_not_available"))
    if lose_one:
        requests.append(lr.Request("free", "f1", 100, "spike", 202, deferred=True))
    samples = [
        lr.Sample(
            t,
            backlog=t // 5,
            running=3,
            degraded=60 < t < 90,
            batch_running=4,
            batch_paused=1,
            batch_images=16,
            busy_pct=80.0,
        )
        for t in range(0, 150, 2)
    ]
    actions = [lr.Action(60, "pace 2", 200), lr.Action(90, "degraded on", 200)]
    return lr.Rehearsal(requests, samples, actions, phases, meta={"capacity": 30.0})


def test_verdict_from_the_records() -> None:
    v = lr.verdict(_rehearsal(peak_paid_s=0.3))
    assert math.isclose(v["paid_p99_baseline_s"], 0.29)
    assert math.isclose(v["paid_p99_ratio"], 0.3 / 0.29)
    assert v["pass"] == {
        "paid_p99_ratio": True,
        "5xx": True,
        "lost": True,
        "deferred_finished": True,
    }
    assert v["free_users"] == 8 and v["free_users_rolled_in"] == 7 and v["free_users_served"] == 7

    slow = lr.verdict(_rehearsal(peak_paid_s=0.5, lose_one=True))
    assert slow["pass"]["paid_p99_ratio"] is False
    assert slow["lost"] == 1 and slow["deferred_finished"] == slow["deferred"] - 1
    assert slow["pass"]["deferred_finished"] is False


def test_report_folder(tmp_path: Path) -> None:
    out = tmp_path / "report"
    summary = lr.write_report(_rehearsal(peak_paid_s=0.3), out)
    names = {p.name for p in out.iterdir()}
    assert {
        "index.html",
        "summary.json",
        "requests.png",
        "latency.png",
        "queue.png",
        "deferred.png",
        "batch.png",
    } <= names
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "index.html").read_text()
    assert "MISSED" not in page and "degraded on" in page and "batch.png" in page
    stored = json.loads((out / "summary.json").read_text())
    assert stored["verdict"]["deferred"] == summary["verdict"]["deferred"] == 100
    assert [row["tier"] for row in stored["by_phase"]] == ["paid", "paid", "free"]


def test_deferred_series_counts_waiting_and_finished() -> None:
    r = lr.Rehearsal(
        [
            lr.Request("free", "a", 0, "x", 202, deferred=True, done_s=5),
            lr.Request("free", "b", 2, "x", 202, deferred=True, done_s=10),
        ],
        [],
        [],
        [lr.Phase("x", 0, 12)],
    )
    ts, waiting, accepted, finished = lr.deferred_series(r, 1.0)
    assert waiting[ts.index(3.0)] == 2 and waiting[ts.index(6.0)] == 1 and waiting[-1] == 0
    assert accepted[-1] == 2 and finished[ts.index(5.0)] == 1 and finished[-1] == 2


def test_report_drawn_again_from_its_records(tmp_path: Path) -> None:
    """`python bench/launch_report.py DIR` redraws a report from summary.json and the
    requests.csv.gz that bench/launch.py writes beside it."""
    r = _rehearsal(peak_paid_s=0.3)
    first = lr.write_report(r, tmp_path)
    columns = ["t", "tier", "account", "phase", "status", "code", "job_status", "done_s"]
    with gzip.open(tmp_path / "requests.csv.gz", "wt", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for q in r.requests:
            fate = ("deferred" if q.deferred else "queued") if q.status == 202 else ""
            done = "" if q.done_s is None else q.done_s
            writer.writerow([q.t, q.tier, q.account, q.phase, q.status, q.code, fate, done])
    again = lr.write_report(lr.load_folder(tmp_path), tmp_path)
    assert again["verdict"] == first["verdict"]
    assert again["actions"] == first["actions"] and again["samples"] == first["samples"]
