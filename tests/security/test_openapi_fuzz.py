"""A bounded schemathesis run over the gateway's own /openapi.json (issue 14).

Every operation, the user API with a user key and /admin with the operator's key, is
sent schema-valid and schema-invalid requests generated from the document; every answer
must be no 5xx and must match what the document says: a documented status code, its
content type, its body schema and its headers. A client generated from /openapi.json
can then trust it.

In-process on the ASGI interface with the fake engine (tests/support/inprocess.py), and
derandomized, so a run is the same every time and takes seconds. The run counts and
prints its findings per operation, then fails listing one example of each.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup, ServerError
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.inprocess import InProcess, build, serve
from tests.support.routes import http_routes

# Per operation and generation mode. ~25 operations x 2 modes x this many requests.
MAX_EXAMPLES = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@dataclass
class Findings:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    per_operation: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0
    violations: int = 0
    # One example per (operation, kind of failure): enough to reproduce each.
    examples: dict[tuple[str, str], str] = field(default_factory=dict)

    def record(self, label: str, failure: Failure, curl: str) -> None:
        if isinstance(failure, ServerError):
            self.server_errors += 1
        else:
            self.violations += 1
        kind = failure.title if type(failure) is Failure else type(failure).__name__
        key = (label, kind)
        if key not in self.examples:
            self.examples[key] = f"{failure.title}: {failure.message[:600]}\n    {curl[:600]}"

    def report(self) -> str:
        lines = [
            f"{self.requests} requests, {self.server_errors} 5xx, "
            f"{self.violations} schema violations; statuses {dict(sorted(self.statuses.items()))}"
        ]
        for (label, kind), example in sorted(self.examples.items()):
            lines.append(f"- {label} [{kind}] {example}")
        return "\n".join(lines)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    # Hypothesis keeps caches in ./.hypothesis by default: not in the repository.
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    built = build(tmp_path_factory.mktemp("fuzz"))
    yield built
    # schemathesis started the app's lifespan (once, on its own event loop thread).
    from schemathesis.python import asgi

    shutdown = getattr(asgi, "shutdown_lifespans", None)  # else: at the process's exit
    if shutdown is not None:
        shutdown()


def _error_body_problem(response: Any) -> str | None:
    """What is wrong with a 4xx's body, if anything: OpenAI's clients read
    ``error.message`` and ``error.code`` from every failure."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return "a 4xx without an OpenAI error body"
    if not isinstance(error, dict) or not error.get("message"):
        return "a 4xx without error.message"
    if not isinstance(error.get("code"), str):
        return "a 4xx whose error.code is null"
    return None


def _fuzz_operation(
    target: InProcess, operation: Any, mode: GenerationMode, findings: Findings
) -> None:
    # A real key for the operation's audience, so requests get past authentication; the
    # random and missing keys are covered by the isolation sweep.
    auth = target.auth_for(operation.path)
    strategy = operation.as_strategy(
        generation_mode=mode, headers={"authorization": auth["Authorization"]}
    )

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: count, don't minimise
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call(timeout=20)
        findings.requests += 1
        findings.statuses[response.status_code] += 1
        findings.per_operation[operation.label] += 1
        problem = _error_body_problem(response)
        if problem is not None:
            findings.record(
                operation.label,
                Failure(operation=operation.label, title=problem, message=response.text[:300]),
                case.as_curl_command(),
            )
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            curl = case.as_curl_command(headers=dict(response.request.headers))
            for failure in group.exceptions:
                findings.record(operation.label, failure, curl)
        except Failure as failure:
            findings.record(operation.label, failure, case.as_curl_command())

    try:
        run()
    except Unsatisfiable:
        # Nothing in the operation can be made invalid (no body or parameters besides
        # the fixed key): only positive requests apply.
        if mode is not GenerationMode.NEGATIVE:
            raise


def test_openapi_operations_never_5xx_and_match_the_schema(target: InProcess) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", target.app)
    results = list(schema.get_all_operations())
    # An operation schemathesis cannot read is a broken document: say which.
    broken = [str(r.err()) for r in results if isinstance(r, Err)]
    assert not broken, "\n".join(broken)
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    labels = {op.label for op in operations}
    # Both audiences are in the document, so both are fuzzed.
    assert any(" /v1/" in label for label in labels), labels
    assert any(" /admin/" in label for label in labels), labels

    findings = Findings()
    started = time.monotonic()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(target, operation, mode, findings)
    elapsed = time.monotonic() - started
    summary = f"{len(operations)} operations in {elapsed:.1f} s: {findings.report()}"
    print(summary)
    unreached = labels - set(findings.per_operation)
    assert not unreached, f"never sent: {sorted(unreached)}"
    assert findings.server_errors == 0 and findings.violations == 0, summary


PROBE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


async def test_every_route_answers_405_with_allow_for_a_method_it_lacks(tmp_path: Path) -> None:
    """RFC 9110: a 405 names the methods that would work, in ``Allow``; and like every
    error, it has an OpenAI body with a code."""
    target = build(tmp_path)
    missing: list[str] = []
    async with serve(target) as client:
        for route in http_routes(target.app):
            path = route.fill({name: "x" for name in route.params})
            for method in PROBE_METHODS:
                if method in route.methods:
                    continue
                response = await client.request(
                    method, path, headers=target.auth_for(path), json={}
                )
                allow = {m.strip() for m in response.headers.get("allow", "").split(",")}
                problem = _error_body_problem(response)
                if response.status_code != 405:
                    missing.append(f"{method} {path}: {response.status_code}, not 405")
                elif not (route.methods - {"HEAD"}) <= allow:
                    missing.append(
                        f"{method} {path}: Allow {sorted(allow)} for {sorted(route.methods)}"
                    )
                elif problem is not None:
                    missing.append(f"{method} {path}: {problem}")
    assert not missing, "\n".join(missing)
