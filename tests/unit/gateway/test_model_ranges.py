"""The gateway refuses what the model would refuse, from the model's declared ranges
(config.ModelCatalogEntry): before, steps=1000 was answered 202 for a model that takes
64, and the job failed later, after it cost the client its rate limit."""

from __future__ import annotations

import pytest

from daguerre.config import STEP_RANGES, ModelCatalogEntry, Settings
from daguerre.models.builtin.tokens import N_TOKENS
from tests.unit.gateway.conftest import Gateway
from tests.unit.gateway.test_errors import error_of


def test_the_builtin_range_is_the_backends_own() -> None:
    assert STEP_RANGES["builtin"] == (1, N_TOKENS)
    assert Settings().models["builtin"].step_range("builtin") == (1, N_TOKENS)


def test_an_entry_may_declare_its_own_range() -> None:
    assert ModelCatalogEntry(steps=(4, 30)).step_range("sd15") == (4, 30)
    assert ModelCatalogEntry().step_range("diffusers") == (1, 150)
    assert ModelCatalogEntry().step_range("something-else") == (1, 1000)
    with pytest.raises(ValueError, match="steps"):
        ModelCatalogEntry(steps=(10, 5))


@pytest.mark.parametrize("steps", [65, 1000])
async def test_steps_past_the_models_range_are_400(gateway: Gateway, steps: int) -> None:
    body = {"prompt": "a", "size": "64x64", "steps": steps}
    error = error_of(await gateway.client.post("/v1/jobs", json=body, headers=gateway.auth()), 400)
    assert error["param"] == "steps"
    assert "1 to 64" in error["message"]
    assert gateway.engine.submitted == []


@pytest.mark.parametrize("steps", [1, 64])
async def test_steps_in_range_are_accepted(gateway: Gateway, steps: int) -> None:
    body = {"prompt": "a", "size": "64x64", "steps": steps}
    response = await gateway.client.post("/v1/jobs", json=body, headers=gateway.auth())
    assert response.status_code == 202, response.text
