"""`daguerre generate`: submit a job to a running server, follow its events, save it.

It speaks only HTTP (the native job API), so it works against any Daguerre server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


@dataclass(frozen=True)
class GenerateOptions:
    prompt: str
    output: Path
    size: str = "auto"
    n: int = 1
    model: str | None = None
    steps: int | None = None
    seed: int | None = None
    server: str = "http://127.0.0.1:8000"
    key: str | None = None


class GenerateError(RuntimeError):
    pass


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, JSON data) pairs from a text/event-stream."""
    name = "message"
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith(":"):
            continue  # a keep-alive comment
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def output_paths(output: Path, count: int) -> list[Path]:
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}-{i + 1}{output.suffix}") for i in range(count)]


def _raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text or response.reason_phrase
    raise GenerateError(f"{response.status_code}: {message}")


class _Display:
    """A rich progress bar on a terminal; one plain line per change anywhere else."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("queued", total=None)
        self._last = ""

    def __enter__(self) -> _Display:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()

    def update(self, job: dict[str, Any]) -> None:
        status, step, total = job["status"], job.get("step") or 0, job.get("total_steps")
        if status == "queued":
            ahead = job.get("queue_position")
            wait = job.get("estimated_wait_s")
            text = "queued" if ahead is None else f"queued, {ahead} ahead"
            if wait is not None:
                text += f", ~{wait:.0f} s"
        else:
            text = status
        self.progress.update(self.task, description=text, completed=step, total=total)
        line = f"{text} step {step}/{total if total is not None else '?'}"
        if not self.live and line != self._last:
            self.console.print(line, highlight=False)
        self._last = line


def run_generate(options: GenerateOptions, console: Console | None = None) -> int:
    console = console or Console(stderr=True)
    if not options.key:
        console.print("[red]No API key: pass --key or set DAGUERRE_API_KEY.[/red]")
        return 2
    fmt = _FORMATS.get(options.output.suffix.lower())
    if fmt is None:
        console.print(
            f"[red]Unknown image type {options.output.suffix!r}; use .png, .jpg or .webp."
        )
        return 2
    body: dict[str, Any] = {"prompt": options.prompt, "size": options.size, "n": options.n}
    body["output_format"] = fmt
    for name in ("model", "steps", "seed"):
        if getattr(options, name) is not None:
            body[name] = getattr(options, name)
    headers = {"Authorization": f"Bearer {options.key}"}
    timeout = httpx.Timeout(30.0, read=None)
    with httpx.Client(
        base_url=options.server.rstrip("/"), headers=headers, timeout=timeout
    ) as http:
        job_id: str | None = None
        try:
            created = http.post("/v1/jobs", json=body)
            _raise_for_error(created)
            job_id = created.json()["id"]
            job = _follow(http, job_id, console)
            return _save(http, job, options.output, console)
        except KeyboardInterrupt:
            if job_id is not None:
                http.delete(f"/v1/jobs/{job_id}")
                console.print(f"cancelled job {job_id}")
            return 130
        except GenerateError as err:
            console.print(f"[red]{err}[/red]")
            return 1
        except httpx.HTTPError as err:
            console.print(f"[red]cannot reach {options.server}: {err}[/red]")
            return 1


def _follow(http: httpx.Client, job_id: str, console: Console) -> dict[str, Any]:
    with _Display(console) as display, http.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
        _raise_for_error(stream)
        for name, job in sse_events(stream.iter_lines()):
            display.update(job)
            if name in ("completed", "failed", "cancelled"):
                return job
    raise GenerateError(f"the event stream of job {job_id} ended before the job did")


def _save(http: httpx.Client, job: dict[str, Any], output: Path, console: Console) -> int:
    if job["status"] != "succeeded":
        console.print(f"[red]job {job['id']} {job['status']}: {job.get('error') or ''}[/red]")
        return 1
    paths = output_paths(output, len(job["images"]))
    for image, path in zip(job["images"], paths, strict=True):
        response = http.get(image["url"])
        _raise_for_error(response)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(response.content)
        console.print(f"wrote {path} ({image['width']}x{image['height']})", highlight=False)
    return 0
