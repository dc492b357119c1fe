"""The launch rehearsal's report (bench/launch.py): plots over time, a per-phase table
and the verdict, written to a folder as index.html, PNGs and summary.json.

Everything here works on plain records (times in seconds from the rehearsal's start),
so that it can be tested on synthetic data without a stack.
"""

from __future__ import annotations

import csv
import gzip
import html
import itertools
import json
import math
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PAID_TIERS = ("pro", "plus")
# Targets of issue 19: paid p99 at the peak against the baseline's, and the rest.
MAX_P99_RATIO = 1.5

OUTCOMES = (
    "served",  # 202, queued at the tier's priority
    "deferred",  # 202, deferred past the wait budget
    "429 rate limit",
    "429 paced",
    "429 queue full",
    "403 not rolled in",
    "5xx or no answer",
    "other",
)
COLOURS = {
    "served": "#2b8a3e",
    "deferred": "#74c0fc",
    "429 rate limit": "#f59f00",
    "429 paced": "#e8590c",
    "429 queue full": "#c92a2a",
    "403 not rolled in": "#adb5bd",
    "5xx or no answer": "#000000",
    "other": "#9c36b5",
}


@dataclass
class Request:
    """One request as the load generator saw it, with its job's fate from the job table."""

    tier: str
    account: str
    t: float  # sent, s from the start
    phase: str
    status: int  # HTTP status; 599: no answer at all
    code: str = ""  # the error's code for a 4xx
    deferred: bool = False  # accepted as deferred
    done_s: float | None = None  # from sending to the final image (succeeded jobs only)

    @property
    def paid(self) -> bool:
        return self.tier in PAID_TIERS

    @property
    def accepted(self) -> bool:
        return self.status == 202

    @property
    def outcome(self) -> str:
        if self.status == 202:
            return "deferred" if self.deferred else "served"
        if self.status >= 500:
            return "5xx or no answer"
        if self.status == 429:
            return {
                "rate_limit_exceeded": "429 rate limit",
                "admission_paced": "429 paced",
            }.get(self.code, "429 queue full")
        if self.status == 403:
            return "403 not rolled in"
        return "other"


@dataclass
class Sample:
    """The stack's state at one moment (every ~2 s)."""

    t: float
    backlog: int | None = None  # the pool's queued + deferred jobs
    running: int | None = None
    degraded: bool | None = None
    throughput: float | None = None  # jobs/s finished recently, as admission sees it
    batch_running: float | None = None  # renders in the worker's batch
    batch_paused: float | None = None
    batch_images: float | None = None  # the batch budget
    busy_pct: float | None = None  # the machine's CPU, all cores, since the last sample
    # Since the last sample: the mean share of the batch budget a step filled (the
    # worker's daguerre_worker_batch_occupancy, where it has one), and the share of the
    # time the engine spent stepping (daguerre_worker_step_seconds).
    occupancy_pct: float | None = None
    stepping_pct: float | None = None


@dataclass
class Action:
    t: float
    label: str
    status: int = 0  # the admin API's answer


@dataclass
class Phase:
    name: str
    start: float
    end: float


@dataclass
class Rehearsal:
    requests: list[Request]
    samples: list[Sample]
    actions: list[Action]
    phases: list[Phase]
    meta: dict[str, Any] = field(default_factory=dict)
    baseline: str = "baseline"
    peak: str = "spike"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def phase_rows(r: Rehearsal) -> list[dict[str, Any]]:
    rows = []
    for phase in r.phases:
        for paid in (True, False):
            group = [q for q in r.requests if q.phase == phase.name and q.paid == paid]
            if not group:
                continue
            outcomes = Counter(q.outcome for q in group)
            times = [q.done_s for q in group if q.accepted and q.done_s is not None]
            rows.append(
                {
                    "phase": phase.name,
                    "tier": "paid" if paid else "free",
                    "requests": len(group),
                    "per_s": len(group) / max(phase.end - phase.start, 1e-9),
                    **{o: outcomes[o] for o in OUTCOMES},
                    "p50_s": percentile(times, 0.5),
                    "p99_s": percentile(times, 0.99),
                    "lost": sum(1 for q in group if q.accepted and q.done_s is None),
                }
            )
    return rows


def verdict(r: Rehearsal) -> dict[str, Any]:
    """The targets, computed from the records alone."""

    def paid_p99(phase: str) -> float:
        times = [
            q.done_s
            for q in r.requests
            if q.paid and q.phase == phase and q.accepted and q.done_s is not None
        ]
        return percentile(times, 0.99)

    base, peak = paid_p99(r.baseline), paid_p99(r.peak)
    ratio = peak / base if base and not math.isnan(base) and not math.isnan(peak) else math.nan
    others = {
        p.name: paid_p99(p.name) / base
        for p in r.phases
        if p.name != r.baseline and base and not math.isnan(paid_p99(p.name))
    }
    errors = sum(1 for q in r.requests if q.status >= 500)
    lost = sum(1 for q in r.requests if q.accepted and q.done_s is None)
    deferred = [q for q in r.requests if q.accepted and q.deferred]
    deferred_done = sum(1 for q in deferred if q.done_s is not None)
    free = [q for q in r.requests if not q.paid]
    tried = {q.account for q in free}
    rolled_in = {q.account for q in free if q.outcome != "403 not rolled in"}
    served = {q.account for q in free if q.accepted and q.done_s is not None}
    free_served = sum(1 for q in free if q.accepted and q.done_s is not None)
    return {
        "paid_p99_baseline_s": base,
        "paid_p99_peak_s": peak,
        "paid_p99_ratio": ratio,
        "paid_p99_ratio_by_phase": others,
        "5xx": errors,
        "lost": lost,
        "deferred": len(deferred),
        "deferred_finished": deferred_done,
        "free_users": len(tried),
        "free_users_rolled_in": len(rolled_in),
        "free_users_served": len(served),
        "free_requests": len(free),
        "free_requests_served": free_served,
        "pass": {
            "paid_p99_ratio": not math.isnan(ratio) and ratio <= MAX_P99_RATIO,
            "5xx": errors == 0,
            "lost": lost == 0,
            "deferred_finished": deferred_done == len(deferred),
        },
    }


# -- plots ------------------------------------------------------------------------------


def _frame(ax: Any, r: Rehearsal) -> None:
    """Phases as shaded bands named at the top, operator actions as numbered lines."""
    for i, phase in enumerate(r.phases):
        if i % 2:
            ax.axvspan(phase.start, phase.end, color="#f1f3f5", zorder=0)
        ax.text(
            (phase.start + phase.end) / 2,
            1.0,
            phase.name,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=7,
            color="#495057",
        )
    end = max([p.end for p in r.phases] + [s.t for s in r.samples] + [0.0])
    level, last = 0, -math.inf
    for i, action in enumerate(r.actions, 1):
        ax.axvline(action.t, color="#5f3dc4", linestyle="--", linewidth=0.8, zorder=3)
        # Actions a moment apart get their numbers one under the other.
        level = level + 1 if action.t - last < 0.02 * max(end, 1.0) else 0
        last = action.t
        ax.text(
            action.t,
            0.97 - 0.09 * level,
            str(i),
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=7,
            color="white",
            bbox={"boxstyle": "circle,pad=0.15", "fc": "#5f3dc4", "ec": "none"},
            zorder=4,
        )
    ax.set_xlim(0, end)
    ax.grid(True, alpha=0.3)


def _legend(ax: Any, handles: list[Any] | None = None, labels: list[str] | None = None) -> None:
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.06, 1.0), fontsize=7,
              frameon=False)  # fmt: skip


def _bins(end: float, width: float) -> list[float]:
    return [i * width for i in range(int(end // width) + 2)]


def _plot_requests(r: Rehearsal, path: Path, width: float) -> None:
    import matplotlib.pyplot as plt

    end = max([q.t for q in r.requests] + [p.end for p in r.phases] + [1.0])
    edges = _bins(end, width)
    fig, axes = plt.subplots(2, 1, figsize=(13, 6.5), sharex=True)
    for ax, paid in zip(axes, (True, False), strict=True):
        counts = {o: [0.0] * (len(edges) - 1) for o in OUTCOMES}
        for q in r.requests:
            if q.paid == paid:
                counts[q.outcome][min(int(q.t // width), len(edges) - 2)] += 1 / width
        present = [o for o in OUTCOMES if any(counts[o])]
        if present:
            ax.stackplot(
                edges[:-1],
                [counts[o] for o in present],
                labels=present,
                colors=[COLOURS[o] for o in present],
                step="post",
                alpha=0.9,
            )
        ax.set_ylabel(f"{'paid' if paid else 'free'} requests/s")
        _frame(ax, r)
        _legend(ax)
    axes[1].set_xlabel("s from the start (by time sent)")
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _plot_latency(r: Rehearsal, path: Path, width: float, base_p99: float) -> None:
    import matplotlib.pyplot as plt

    end = max([q.t for q in r.requests] + [1.0])
    fig, ax = plt.subplots(figsize=(13, 4.5))
    styles = {True: "#1864ab", False: "#e67700"}
    for paid in (True, False):
        by_bin: dict[int, list[float]] = {}
        for q in r.requests:
            if q.paid == paid and q.accepted and q.done_s is not None:
                by_bin.setdefault(int(q.t // width), []).append(q.done_s)
        xs = sorted(by_bin)
        name = "paid" if paid else "free"
        for q_, style in ((0.5, ":"), (0.99, "-")):
            ax.plot(
                [(x + 0.5) * width for x in xs],
                [percentile(by_bin[x], q_) for x in xs],
                style,
                color=styles[paid],
                label=f"{name} p{round(q_ * 100)}",
                linewidth=1.2,
            )
    if not math.isnan(base_p99):
        ax.axhline(
            base_p99 * MAX_P99_RATIO,
            color="#c92a2a",
            linewidth=0.8,
            label=f"{MAX_P99_RATIO}x paid p99 at baseline",
        )
    ax.set_yscale("log")
    ax.set_ylabel("s from sending to the image")
    ax.set_xlabel(f"s from the start (by time sent; {width:.0f} s bins)")
    ax.set_xlim(0, end)
    _frame(ax, r)
    _legend(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _plot_queue(r: Rehearsal, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(13, 4))
    s = [x for x in r.samples if x.backlog is not None]
    ax.plot([x.t for x in s], [x.backlog for x in s], color="#1864ab", label="backlog (queued)")
    ax.plot([x.t for x in s], [x.running for x in s], color="#2b8a3e", label="running")
    for x, nxt in itertools.pairwise(s):
        if x.degraded:
            ax.axvspan(x.t, nxt.t, color="#ffe066", alpha=0.6, zorder=1, linewidth=0)
    ax.plot([], [], color="#ffe066", linewidth=6, label="degraded mode")
    ax.set_ylabel("jobs in the pool")
    ax.set_xlabel("s from the start")
    _frame(ax, r)
    _legend(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def deferred_series(
    r: Rehearsal, step: float
) -> tuple[list[float], list[int], list[int], list[int]]:
    """Deferred jobs over time: waiting (accepted, not finished), accepted so far,
    finished so far."""
    deferred = [q for q in r.requests if q.accepted and q.deferred]
    ends = [q.t + q.done_s if q.done_s is not None else math.inf for q in deferred]
    last = max([e for e in ends if e != math.inf] + [q.t for q in r.requests] + [0.0])
    ts = [i * step for i in range(int(last // step) + 2)]
    waiting = [sum(1 for q, e in zip(deferred, ends, strict=True) if q.t <= t < e) for t in ts]
    accepted = [sum(1 for q in deferred if q.t <= t) for t in ts]
    finished = [sum(1 for e in ends if e <= t) for t in ts]
    return ts, waiting, accepted, finished


def _plot_deferred(r: Rehearsal, path: Path) -> None:
    import matplotlib.pyplot as plt

    ts, waiting, accepted, finished = deferred_series(r, 2.0)
    fig, ax = plt.subplots(figsize=(13, 4))
    ax.plot(ts, waiting, color="#1864ab", label="deferred, waiting or rendering")
    ax.plot(ts, accepted, color="#74c0fc", linestyle="--", label="deferred so far")
    ax.plot(ts, finished, color="#2b8a3e", label="deferred finished so far")
    ax.set_ylabel("jobs")
    ax.set_xlabel("s from the start")
    _frame(ax, r)
    ax.set_xlim(0, max(ts[-1], ax.get_xlim()[1]))
    _legend(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _plot_batch(r: Rehearsal, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (top, low) = plt.subplots(2, 1, figsize=(13, 6), sharex=True)
    s = [x for x in r.samples if x.batch_running is not None]
    top.plot([x.t for x in s], [x.batch_running for x in s], color="#1864ab",
             label="renders in the batch (at the sample)")  # fmt: skip
    top.plot([x.t for x in s], [x.batch_paused or 0 for x in s], color="#e8590c",
             label="renders paused for paid work")  # fmt: skip
    budgets = {x.batch_images for x in s if x.batch_images}
    if budgets:
        top.axhline(max(budgets), color="#1864ab", linestyle=":", linewidth=0.8,
                    label=f"batch budget ({max(budgets):.0f} images)")  # fmt: skip
    top.set_ylabel("renders")
    _frame(top, r)
    _legend(top)
    for name, colour, label in (
        ("occupancy_pct", "#1864ab", "batch occupancy: mean share of the budget per step"),
        ("stepping_pct", "#2b8a3e", "engine stepping: share of the time"),
        ("busy_pct", "#868e96", "machine CPU busy, all cores"),
    ):
        xs = [x for x in r.samples if getattr(x, name) is not None]
        if xs:
            low.plot([x.t for x in xs], [getattr(x, name) for x in xs], color=colour,
                     linewidth=1.0, label=label)  # fmt: skip
    low.set_ylim(0, 105)
    low.set_ylabel("% (since the last sample)")
    low.set_xlabel("s from the start")
    _frame(low, r)
    _legend(low)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


# -- the page ---------------------------------------------------------------------------

PLOTS = (
    ("requests.png", "Requests by tier and outcome (per second, by the time sent)."),
    (
        "latency.png",
        "Latency from sending to the final image, p50 and p99 by tier, per bin of send "
        "time (accepted jobs that finished). The red line is 1.5x the paid p99 at baseline.",
    ),
    (
        "queue.png",
        "The pool's backlog (queued and deferred jobs) and running jobs, from "
        "GET /admin/pools; yellow while the pool is in degraded mode.",
    ),
    (
        "deferred.png",
        "Deferred jobs: waiting or rendering at each moment, accepted so far and finished "
        "so far (from the job table's finish times).",
    ),
    (
        "batch.png",
        "The worker's batch occupancy and paused renders (its /metrics), and the machine's CPU.",
    ),
)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.2f}"
    return html.escape(str(v))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(row.get(c, ''))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def verdict_rows(v: dict[str, Any]) -> list[dict[str, Any]]:
    ok = v["pass"]

    def mark(passed: bool | None) -> str:
        return "–" if passed is None else ("met" if passed else "MISSED")

    return [
        {
            "check": "paid p99 at the peak / at baseline",
            "target": f"<= {MAX_P99_RATIO}x",
            "measured": f"{_fmt(v['paid_p99_ratio'])}x ({_fmt(v['paid_p99_peak_s'])} s / "
            f"{_fmt(v['paid_p99_baseline_s'])} s)",
            "result": mark(ok["paid_p99_ratio"]),
        },
        {
            "check": "5xx (and no answer)",
            "target": "0",
            "measured": v["5xx"],
            "result": mark(ok["5xx"]),
        },
        {
            "check": "lost jobs (accepted, not finished)",
            "target": "0",
            "measured": v["lost"],
            "result": mark(ok["lost"]),
        },
        {
            "check": "deferred jobs finished",
            "target": "all",
            "measured": f"{v['deferred_finished']} of {v['deferred']}",
            "result": mark(ok["deferred_finished"]),
        },
        {
            "check": "free users served (>= 1 image)",
            "target": "–",
            "measured": f"{v['free_users_served']} of {v['free_users']} who tried "
            f"({v['free_users_rolled_in']} rolled in); free requests served "
            f"{v['free_requests_served']} of {v['free_requests']}",
            "result": mark(None),
        },
    ]


def write_report(r: Rehearsal, out: Path, bin_s: float = 5.0) -> dict[str, Any]:
    """Write index.html, the plots and summary.json into ``out``; return the summary."""
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    v = verdict(r)
    rows = phase_rows(r)
    _plot_requests(r, out / "requests.png", bin_s)
    _plot_latency(r, out / "latency.png", max(bin_s, 10.0), v["paid_p99_baseline_s"])
    _plot_queue(r, out / "queue.png")
    _plot_deferred(r, out / "deferred.png")
    _plot_batch(r, out / "batch.png")
    summary = {
        "meta": r.meta,
        "verdict": v,
        "phases": [asdict(p) for p in r.phases],
        "actions": [asdict(a) for a in r.actions],
        "by_phase": rows,
        "samples": [asdict(x) for x in r.samples],
    }
    (out / "summary.json").write_text(
        json.dumps(summary, indent=2, default=str, allow_nan=True) + "\n"
    )
    actions = [
        {"#": i, "at s": a.t, "action": a.label, "answer": a.status}
        for i, a in enumerate(r.actions, 1)
    ]
    phase_columns = ["phase", "tier", "requests", "per_s", *OUTCOMES, "p50_s", "p99_s", "lost"]
    meta = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(val)}</td></tr>" for k, val in r.meta.items()
    )
    figures = "".join(
        f'<figure><img src="{name}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for name, caption in PLOTS
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Daguerre launch rehearsal</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
  padding: 0 1em; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 12px; }}
th, td {{ border: 1px solid #dee2e6; padding: 2px 6px; text-align: right; }}
th {{ background: #f1f3f5; }}
td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; }} figure {{ margin: 1em 0 2em; }}
figcaption {{ color: #495057; font-size: 13px; }}
</style></head><body>
<h1>Launch rehearsal</h1>
<h2>Verdict</h2>
{_table(verdict_rows(v), ["check", "target", "measured", "result"])}
<p>Paid p99 of each phase against the baseline's:
{html.escape(", ".join(f"{k} {_fmt(x)}x" for k, x in v["paid_p99_ratio_by_phase"].items()))}.</p>
<h2>Operator actions</h2>
{_table(actions, ["#", "at s", "action", "answer"])}
<h2>Over time</h2>
{figures}
<h2>By phase</h2>
{_table(rows, phase_columns)}
<h2>Run</h2>
<table>{meta}</table>
</body></html>
"""
    (out / "index.html").write_text(page)
    return summary


def load_folder(out: Path) -> Rehearsal:
    """A report's records again, from its summary.json and requests.csv.gz (as
    bench/launch.py writes them): to draw the report again without a rerun."""
    summary = json.loads((out / "summary.json").read_text())
    requests = []
    with gzip.open(out / "requests.csv.gz", "rt", newline="") as f:
        for row in csv.DictReader(f):
            requests.append(
                Request(
                    tier=row["tier"],
                    account=row["account"],
                    t=float(row["t"]),
                    phase=row["phase"],
                    status=int(row["status"]),
                    code=row["code"],
                    deferred=row["job_status"].startswith("deferred"),
                    done_s=float(row["done_s"]) if row["done_s"] else None,
                )
            )
    return Rehearsal(
        requests,
        [Sample(**x) for x in summary["samples"]],
        [Action(**x) for x in summary["actions"]],
        [Phase(**x) for x in summary["phases"]],
        summary["meta"],
    )


if __name__ == "__main__":
    # python bench/launch_report.py DIR: draw DIR's report again from its records.
    folder = Path(sys.argv[1])
    write_report(load_folder(folder), folder)
    print(folder / "index.html")
