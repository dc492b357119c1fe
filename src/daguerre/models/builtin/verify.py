"""Check each finished image against what its request asked for, and draw it again if wrong.

The model samples, so a small share of its images miss (a fragment of the old colour left
after a recolour, a three-object scene with one shape wrong). A user forgives a slow edit
but not one that silently does nothing, so a finished image is checked against the scene
its request asks for: at once if it is exactly a render of that scene (``exact.py``, 0.05
ms), else by the classical checker the evaluation uses (``checker.py``: pixels only,
about 0.7 ms at 64×64). A miss is rendered again, up to ``retries`` times: first the same
request with another seed, then through a plan (``plans.py``). Only the misses pay; when
every attempt misses, the closest one is kept.

Retry seeds are derived from the request's seed, so a request gives the same image every
time, batched or alone, and whether its redraws ride in the engine's batch or run apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from daguerre.models.builtin import checker
from daguerre.models.builtin.exact import exactly
from daguerre.models.builtin.generation import Conditioning
from daguerre.models.builtin.plans import Plan
from daguerre.models.builtin.reading import read_indices
from daguerre.models.builtin.understanding import Reading

DEFAULT_RETRIES = 5
# The first retries draw the same request again, more freely than the usual 0.3: on the
# misses of 300 three-object captions, 8 tries each came out right 48, 59, 62, 56 and 35
# times of 144 at 0.0, 0.3, 0.6, 1.0 and 1.5. Later retries follow the request's plans.
PLAIN_ATTEMPTS = 2
RETRY_TEMPERATURES = (0.6, 1.0)
PLAN_SEEDS = 16  # seed offsets per attempt, one per stage of a plan
_GOLDEN = 0x9E3779B97F4A7C15  # spreads consecutive attempts far apart in seed space


def retries_for(quality: str, default: int) -> int:
    """What a request's ``quality`` buys: the redraws a miss may get (none at low, where
    nothing is checked either; twice the model's default at high)."""
    return {"low": 0, "high": 2 * default}.get(quality, default)


def retry_temperature(attempt: int) -> float:
    """Plain redraws alternate between the temperatures (a request without plans keeps
    redrawing)."""
    return RETRY_TEMPERATURES[(attempt - 1) % len(RETRY_TEMPERATURES)]


def retry_seed(seed: int, attempt: int) -> int:
    """The seed of a request's ``attempt``-th retry (attempt 0 is the request's own)."""
    return (seed + attempt * _GOLDEN) % 2**63


@dataclass(frozen=True)
class Verdict:
    """Right or not, and how close, to rank attempts that all missed."""

    ok: bool
    closeness: tuple[int, int]


_EXACT = Verdict(True, (1, 1_000))


def _verdict(result: checker.CheckResult) -> Verdict:
    hits = result.colour_hits + result.shape_hits + result.position_hits + result.size_hits
    strays = result.extra_objects + result.foreign_regions
    return Verdict(result.ok, (int(result.ok), hits - strays))


def check_indices(indices: np.ndarray, reading: Reading) -> Verdict | None:
    """The verdict on native palette indices, or None if nothing can be checked: at once
    for an exact render of the expected scene (exact.py), else the pixel checker's."""
    if reading.expected is None:
        return None
    if exactly(indices, reading.expected):
        return _EXACT
    return _verdict(checker.judge(read_indices(indices), reading.expected))


@dataclass
class Outcome:
    """What verification did: how many images were checked, missed at first, were redrawn,
    and still missed after every retry (``daguerre eval builtin`` prints the totals)."""

    checked: int = 0
    missed_first: int = 0
    retries: int = 0
    still_wrong: int = 0

    def add(self, other: Outcome) -> None:
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))


Decode = Callable[[np.ndarray], np.ndarray]  # tokens (B, 64, 2) -> palette indices (B, 64, 64)


@dataclass
class _Candidate:
    """One attempt at one image: a plain redraw (no plan), or a plan at one of its stages."""

    image: int
    attempt: int
    plan: Plan | None
    stage: int = 0
    tokens: np.ndarray | None = None  # the result of its last stage, for the next one


class Redraws:
    """One request's check-and-redraw, however its redraws are run.

    ``first`` takes the images the request rendered; each ``next`` gives the conditionings
    to render next (or None when done), and ``take`` their tokens. The worker's engine runs
    them as generations of the shared batch (backend.step_many), where they cost a few
    more rows of passes that run anyway; ``verify`` runs them apart.

    Attempt k of a missed image is a plain redraw (a derived seed, ``retry_temperature``)
    for the first ``PLAIN_ATTEMPTS``, then one of its reading's plans (plans.py) in turn,
    whose stages render one after another, each editing the last one's result. The plain
    attempts go out together, and then all the others: a miss no plain redraw fixes waits
    two or three rounds of 64 token passes instead of up to eight (at the end of a big
    request a round runs at a few rows, where a pass costs about what one image's does).
    The first right attempt, in attempt order, is kept, so the result is the one trying
    them one at a time would give.
    """

    def __init__(self, readings: Sequence[Reading], retries: int) -> None:
        self.readings = list(readings)
        self.retries = retries
        self.tokens: np.ndarray | None = None  # the best images so far, (B, 64, 2)
        self.verdicts: list[Verdict | None] = []
        self.attempt = 0  # the last attempt number sent out
        self.pending: list[int] = []  # images still wrong, with attempts left
        self.round: list[_Candidate] = []  # attempts under way, in order
        self.outcome = Outcome()

    def first(self, tokens: np.ndarray, decode: Decode) -> None:
        self.tokens = tokens.copy()
        if self.retries <= 0:
            return  # checking off: the model's first attempt, as it was
        self.verdicts = [
            check_indices(ix, r) for ix, r in zip(decode(tokens), self.readings, strict=True)
        ]
        self.pending = [i for i, v in enumerate(self.verdicts) if v is not None and not v.ok]
        self.outcome.checked = sum(v is not None for v in self.verdicts)
        self.outcome.missed_first = len(self.pending)

    def next(self, items: Sequence[Conditioning]) -> list[Conditioning] | None:
        if self.round:  # plans in the middle: their next stage
            return [self._conditioning(c, items[c.image]) for c in self.round]
        attempts = self._next_attempts()
        if not self.pending or not attempts:
            self.outcome.still_wrong = len(self.pending)
            self.pending = []
            return None
        self.attempt = attempts[-1]
        self.round = [_Candidate(i, a, self._plan(i, a)) for i in self.pending for a in attempts]
        self.outcome.retries += len(self.round)
        return [self._conditioning(c, items[c.image]) for c in self.round]

    def _next_attempts(self) -> list[int]:
        last = min(PLAIN_ATTEMPTS, self.retries) if self.attempt < PLAIN_ATTEMPTS else self.retries
        return list(range(self.attempt + 1, last + 1))

    def _plan(self, i: int, attempt: int) -> Plan | None:
        plans = self.readings[i].plans
        if attempt <= PLAIN_ATTEMPTS or not plans:
            return None
        return plans[(attempt - PLAIN_ATTEMPTS - 1) % len(plans)]

    def _conditioning(self, c: _Candidate, item: Conditioning) -> Conditioning:
        if c.plan is None:
            seed = retry_seed(item.seed, c.attempt)
            return replace(item, seed=seed, temperature=retry_temperature(c.attempt))
        stage = c.plan[c.stage]
        seed = retry_seed(item.seed, PLAN_SEEDS * c.attempt + c.stage)
        if not stage.edit:
            return Conditioning(stage.prompt, seed)
        source = c.tokens if c.stage else item.source
        keep = item.keep  # a user's mask still holds
        if stage.editable is not None:
            keep = ~stage.editable if keep is None else keep | ~stage.editable
        return Conditioning(stage.prompt, seed, source, keep)

    def take(self, fresh: np.ndarray, decode: Decode) -> None:
        """The renders of ``round``, in order: a plan's inner stage is kept for its next
        stage; a finished attempt replaces an image still wrong if it is closer."""
        assert self.tokens is not None
        finished: list[tuple[_Candidate, np.ndarray]] = []
        for c, new_tokens in zip(self.round, fresh, strict=True):
            if c.plan is not None and c.stage + 1 < len(c.plan):
                c.stage, c.tokens = c.stage + 1, new_tokens
            else:
                finished.append((c, new_tokens))
        if finished:
            done = np.stack([t for _, t in finished])
            for (c, new_tokens), indices in zip(finished, decode(done), strict=True):
                verdict, old = (
                    check_indices(indices, self.readings[c.image]),
                    self.verdicts[c.image],
                )
                assert verdict is not None and old is not None
                if not old.ok and verdict.closeness > old.closeness:
                    self.tokens[c.image], self.verdicts[c.image] = new_tokens, verdict
        ended = {id(c) for c, _ in finished}
        self.round = [c for c in self.round if id(c) not in ended]
        if not self.round:
            self.pending = [i for i in self.pending if not self._ok(i)]

    def _ok(self, i: int) -> bool:
        verdict = self.verdicts[i]
        return verdict is None or verdict.ok


def verify(
    tokens: np.ndarray,
    items: Sequence[Conditioning],
    readings: Sequence[Reading],
    decode: Decode,
    redraw: Callable[[list[Conditioning]], np.ndarray],
    retries: int,
) -> tuple[np.ndarray, Outcome]:
    """``tokens`` (B, 64, 2) with every checkable miss redrawn by ``redraw`` until right or
    out of retries, all at once (for a render that reached its end outside the engine's
    loop, such as one resumed from a checkpoint taken at its last step)."""
    redraws = Redraws(readings, retries)
    redraws.first(tokens, decode)
    while (again := redraws.next(items)) is not None:
        redraws.take(redraw(again), decode)
    assert redraws.tokens is not None
    return redraws.tokens, redraws.outcome
