"""A workflow that breaks the rules (it reads the wall clock), in a module of its own:
the strict sandbox re-imports a workflow's module, so it must import nothing heavy."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow


@workflow.defn(name="ReadsTheWallClock")
class ReadsTheWallClock:
    @workflow.run
    async def run(self) -> str:
        return datetime.now().isoformat()  # not allowed: a replay would differ
