"""Prompt moderation: checked before a job is admitted, so a refused request costs next
to nothing and never reaches a worker.

Two policies (``moderation_policy``):

- ``terms`` (the default): a list of whole words and phrases in two levels. Severe ones
  are always refused; sensitive ones unless the request says ``moderation: low`` and its
  tier's ``moderation`` is ``standard`` (a ``strict`` tier ignores ``low``).
- ``http``: an external classifier with OpenAI's moderation API shape; a flagged prompt
  is refused, and under an allowed ``low`` only if a flagged category is one of
  ``moderation_severe_categories``. When the classifier cannot answer,
  ``moderation_on_error`` decides: ``allow`` by default (availability first, with a
  warning and a metric) or ``refuse``.

A refusal is OpenAI's 400 ``moderation_blocked`` (gates.check_moderation); it is counted
(``daguerre_moderation_refusals_total``) and recorded per account for audit
(store/moderation.py, ``GET /admin/moderation``). The built-in model draws shapes only,
so there is nothing in its outputs to judge; no backend moderates outputs yet.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from daguerre.config import Settings

log = logging.getLogger(__name__)

# A deliberately short starting list: operators bring their own (moderation_terms_file).
DEFAULT_TERMS: dict[str, tuple[str, ...]] = {
    "severe": ("child sexual abuse", "csam", "bestiality", "beheading", "snuff film"),
    "sensitive": ("nude", "naked", "nsfw", "porn", "pornographic", "gore", "gory"),
}


@dataclass(frozen=True)
class Verdict:
    refused: bool
    reason: str = ""  # what matched, for the audit log (never shown to other accounts)
    policy: str = "terms"


class ClassifierDown(Exception):
    """The external classifier did not answer (moderation_on_error=refuse)."""


class TermPolicy:
    def __init__(self, severe: Iterable[str], sensitive: Iterable[str]) -> None:
        self._severe = _pattern(severe)
        self._sensitive = _pattern(sensitive)

    def judge(self, text: str, relaxed: bool) -> Verdict:
        for level, pattern in (("severe", self._severe), ("sensitive", self._sensitive)):
            if pattern is None or (relaxed and level == "sensitive"):
                continue
            match = pattern.search(text)
            if match is not None:
                term = " ".join(match.group(0).lower().split())
                return Verdict(True, f"{level} term '{term}'")
        return Verdict(False)


def _pattern(terms: Iterable[str]) -> re.Pattern[str] | None:
    """Whole words and phrases, any case, any run of spaces between a phrase's words."""
    parts = [r"\s+".join(map(re.escape, t.split())) for t in terms if t.strip()]
    if not parts:
        return None
    return re.compile(r"\b(?:" + "|".join(parts) + r")\b", re.IGNORECASE)


class ClassifierPolicy:
    def __init__(self, settings: Settings) -> None:
        assert settings.moderation_url is not None
        self._url = settings.moderation_url
        key = settings.moderation_api_key
        headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
        # One client for the gateway's life: every submit asks, and a connection (and its
        # TLS handshake) per prompt would add to each one's latency.
        self._client = httpx.AsyncClient(timeout=settings.moderation_timeout_s, headers=headers)
        self._severe = set(settings.moderation_severe_categories)
        self._on_error = settings.moderation_on_error

    async def judge(self, text: str, relaxed: bool) -> Verdict:
        try:
            response = await self._client.post(self._url, json={"input": text})
            response.raise_for_status()
            result = response.json()["results"][0]
            flagged = bool(result["flagged"])
            categories = sorted(k for k, v in (result.get("categories") or {}).items() if v)
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as err:
            if self._on_error == "refuse":
                raise ClassifierDown(f"the moderation classifier did not answer: {err}") from err
            log.warning("moderation classifier unavailable, allowing the request: %s", err)
            return Verdict(False, "classifier unavailable", "http")
        if relaxed:
            categories = [c for c in categories if c in self._severe]
            flagged = bool(categories)
        reason = "categories: " + ", ".join(categories) if categories else "flagged"
        return Verdict(flagged, reason if flagged else "", "http")

    async def close(self) -> None:
        await self._client.aclose()


class Moderation:
    """The configured policy; ``check`` is what the gateway calls."""

    def __init__(self, settings: Settings) -> None:
        self.policy = settings.moderation_policy
        self._terms: TermPolicy | None = None
        self._classifier: ClassifierPolicy | None = None
        if self.policy == "terms":
            terms = DEFAULT_TERMS
            if settings.moderation_terms_file is not None:
                terms = json.loads(settings.moderation_terms_file.read_text(encoding="utf-8"))
            self._terms = TermPolicy(terms.get("severe", ()), terms.get("sensitive", ()))
        elif self.policy == "http":
            self._classifier = ClassifierPolicy(settings)

    async def check(self, text: str, relaxed: bool) -> Verdict:
        if self._terms is not None:
            return self._terms.judge(text, relaxed)
        if self._classifier is not None:
            return await self._classifier.judge(text, relaxed)
        return Verdict(False, policy="off")

    async def close(self) -> None:
        if self._classifier is not None:
            await self._classifier.close()
