"""Renders docs/configuration.md from the settings models, so the page cannot drift.

Run ``python -m daguerre.config.docs`` from the repository root to rewrite the page, or with
``--check`` to fail when it is stale (tests/unit/test_configuration_doc.py does the same).
Descriptions come from each field's ``Field(description=...)``; the section titles from the
section classes' docstrings.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from daguerre.access import FeatureSettings, RenderDefaults, TierSettings
from daguerre.config.catalog import ModelCatalogEntry
from daguerre.config.pools import POOL_SECTIONS
from daguerre.config.settings import SECTIONS

TARGET = Path("docs/configuration.md")
ENV_PREFIX = "DAGUERRE_"

INTRO = """\
# Configuration

<!-- Generated from the settings models by `python -m daguerre.config.docs`: edit the
     models' Field(description=...), not this page. -->

Daguerre is configured in three layers, each over the one before:

1. **Environment settings** (`DAGUERRE_<NAME>`), read once when a process starts.
   Structured ones are JSON and replace the whole default, e.g.
   `DAGUERRE_POOLS='{"chat": {}, "api": {"batch_images": 32}}'`.
2. **The tiers file** (`DAGUERRE_TIERS_FILE`, a TOML file; the package ships
   `daguerre/tiers.toml`): who may do what, how much and how soon.
3. **Live overrides** that operators make while the service runs (`daguerre admin`, or
   the `/admin` API), kept in the database and re-read by every gateway.
"""

LIVE_HEAD = """\
## 3. Live overrides

Kept in the database; every gateway re-reads them every `controls_refresh_s`. They need the
admin key (`DAGUERRE_ADMIN_KEY`) or an API key with the admin scope. The API takes any of the
fields below; the commands have options for the common ones (`daguerre admin set-tier --help`).
"""
# (what, command, API, what it changes); {tier} and {feature} become the fields.
LIVE_ROWS = (
    (
        "a tier's terms",
        "`daguerre admin set-tier TIER ...` / `reset-tier TIER`",
        "`PATCH` / `DELETE /admin/tiers/{name}`",
        "{tier}",
    ),
    (
        "a feature flag",
        "`daguerre admin set-feature FEATURE ...` / `reset-feature FEATURE`",
        "`PATCH` / `DELETE /admin/features/{name}`",
        "{feature}",
    ),
    (
        "a pool's degraded mode",
        "`daguerre admin degraded POOL auto|on|off`",
        "`PUT /admin/pools/{pool}/degraded`",
        "forces degraded mode on or off, or gives it back to `auto` (by `degrade_backlog`)",
    ),
    (
        "a pool's admission pace",
        "`daguerre admin pace POOL PACE`",
        "`PUT /admin/pools/{pool}/pace`",
        "`admit_pace`; `null` goes back to the configured pace",
    ),
)
LIVE_TAIL = """\
`daguerre admin show` and `GET /admin/access` show the tiers and flags in force with the
overrides; `daguerre admin pools` and `GET /admin/pools` show each pool's backlog and controls.
"""


def _default(field: FieldInfo) -> str:
    value: Any = field.get_default(call_default_factory=True)
    if value is None:
        return "None"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_defaults=True)
    elif isinstance(value, dict):
        value = {
            k: v.model_dump(mode="json", exclude_defaults=True) if isinstance(v, BaseModel) else v
            for k, v in value.items()
        }
    if isinstance(value, Path):
        value = str(value)
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`{text}`" if text else '`""`'


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _same(field: str) -> str:
    return field


def _table(fields: dict[str, FieldInfo], head: str, name: Callable[[str], str]) -> list[str]:
    rows = [f"| {head} | default | meaning |", "|---|---|---|"]
    for field_name, field in fields.items():
        rows.append(
            f"| `{name(field_name)}` | {_default(field)} | {_cell(field.description or '')} |"
        )
    return rows


def _sections(models: Iterable[type[BaseModel]], level: str, env: bool) -> list[str]:
    lines: list[str] = []
    head, name = ("setting", _env_name) if env else ("field", _same)
    for model in models:
        title = (model.__doc__ or model.__name__).strip().splitlines()[0].rstrip(".")
        lines += ["", f"{level} {title}", "", *_table(model.model_fields, head, name)]
    return lines


def render() -> str:
    """The whole page, as it should be committed."""
    lines = [INTRO, "## 1. Environment settings"]
    lines += _sections(SECTIONS, "###", env=True)
    lines += ["", "### Pool settings", "", "Each entry of `DAGUERRE_POOLS`, by concern."]
    lines += _sections(POOL_SECTIONS, "####", env=False)
    lines += ["", "### Model catalog entry", "", "Each entry of `DAGUERRE_MODELS`.", ""]
    lines += _table(ModelCatalogEntry.model_fields, "field", _same)
    lines += ["", "## 2. The tiers file", "", "Each `[tiers.NAME]` table:", ""]
    lines += _table(TierSettings.model_fields, "field", _same)
    lines += ["", "A tier's `[tiers.NAME.degraded]` table:", ""]
    lines += _table(RenderDefaults.model_fields, "field", _same)
    lines += ["", "Each `[features.NAME]` table (a feature flag):", ""]
    lines += _table(FeatureSettings.model_fields, "field", _same)
    return "\n".join(lines) + "\n\n" + _live()


def _live() -> str:
    fields = {
        "{tier}": ", ".join(f"`{f}`" for f in TierSettings.model_fields),
        "{feature}": ", ".join(f"`{f}`" for f in FeatureSettings.model_fields),
    }
    rows = ["| what | command | API | changes |", "|---|---|---|---|"]
    for what, command, api, changes in LIVE_ROWS:
        cells = [_cell(what), _cell(command), _cell(api), _cell(fields.get(changes, changes))]
        rows.append("| " + " | ".join(cells) + " |")
    return LIVE_HEAD + "\n" + "\n".join(rows) + "\n\n" + LIVE_TAIL


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is stale: run python -m daguerre.config.docs", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
