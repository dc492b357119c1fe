"""The settings section for moderation: what a prompt is checked against before a job
is admitted (gateway/services/moderation.py). Per-tier strictness is a tier setting
(access.py, ``moderation``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator


class ModerationSection(BaseModel):
    """Prompt moderation: a term list by default, or an external classifier."""

    moderation_policy: Literal["terms", "http", "off"] = Field(
        default="terms",
        description="`terms`: the built-in term list (or `moderation_terms_file`). `http`: "
        "an external classifier at `moderation_url`. `off`: nothing is checked.",
    )
    moderation_terms_file: Path | None = Field(
        default=None,
        description='JSON {"severe": [...], "sensitive": [...]}: whole words or phrases, '
        "any case. Severe terms are refused always; sensitive ones unless the request "
        "says `moderation: low` and its tier allows that. None: the built-in list.",
    )
    moderation_url: str | None = Field(
        default=None,
        description="An OpenAI-compatible moderation endpoint (POST {input} -> {results: "
        "[{flagged, categories}]}), for `moderation_policy=http`.",
    )
    moderation_api_key: SecretStr | None = Field(
        default=None, description="Bearer token for `moderation_url`, if it needs one."
    )
    moderation_timeout_s: float = Field(default=2.0, gt=0, description="Per classifier call.")
    moderation_on_error: Literal["allow", "refuse"] = Field(
        default="allow",
        description="When the classifier cannot answer: `allow` (the request goes on, with a "
        "warning and a metric: availability first) or `refuse` (a 503 that says why).",
    )
    moderation_severe_categories: list[str] = Field(
        default_factory=lambda: ["sexual/minors", "self-harm/instructions", "violence/graphic"],
        description="The classifier's categories still refused under `moderation: low`.",
    )

    @model_validator(mode="after")
    def _http_needs_a_url(self) -> ModerationSection:
        if self.moderation_policy == "http" and not self.moderation_url:
            raise ValueError("moderation_policy=http needs moderation_url (the classifier)")
        return self
