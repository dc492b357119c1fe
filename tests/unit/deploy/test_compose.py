"""compose.yaml: the scale-out topology, loaded with PyYAML and checked for structure, for
commands that exist and for environment names that are real settings. Not run here: there is
no container daemon."""

from __future__ import annotations

import pytest

from daguerre.config import Settings
from tests.unit.deploy.artifacts import (
    compose,
    daguerre_services,
    image_command,
    run_help,
    setting_env_names,
)

DOC = compose()


def test_has_the_scale_out_services() -> None:
    images = {name: svc.get("image", "") for name, svc in DOC["services"].items()}
    assert images["temporal"].startswith("temporalio/auto-setup:")
    assert images["postgres"].startswith("postgres:")
    assert images["temporal-postgres"].startswith("postgres:")
    assert images["redis"].startswith("redis:")
    assert images["minio"].startswith("minio/minio")
    assert DOC["services"]["temporal"]["environment"]["POSTGRES_SEEDS"] == "temporal-postgres"
    ours = daguerre_services(DOC)
    gateways = [n for n, s in ours.items() if s["command"] == ["gateway"]]
    assert len(gateways) >= 2
    pools = {s["command"][2] for s in ours.values() if s["command"][:2] == ["worker", "--pool"]}
    assert pools == set(Settings().pools), "one worker service per configured pool"


def test_every_daguerre_service_builds_this_repo_and_its_command_exists() -> None:
    commands = set()
    for name, svc in daguerre_services(DOC).items():
        assert svc["build"]["context"] == ".", name
        commands.add(tuple(svc["command"]))
    for command in sorted(commands):
        result = run_help(image_command(list(command)))
        assert result.returncode == 0, (command, result.stderr)


@pytest.mark.parametrize("name", sorted(daguerre_services(DOC)))
def test_environment_names_are_real_settings(name: str) -> None:
    env = daguerre_services(DOC)[name]["environment"]
    unknown = set(env) - setting_env_names()
    assert not unknown, f"{name} sets names Settings does not read: {unknown}"


def test_gateways_and_workers_share_what_must_be_shared() -> None:
    services = daguerre_services(DOC)
    envs = [svc["environment"] for svc in services.values()]
    for key in (
        "DAGUERRE_DATABASE_URL",
        "DAGUERRE_REDIS_URL",
        "DAGUERRE_TEMPORAL_ADDRESS",
        "DAGUERRE_URL_SIGNING_SECRET",
        "DAGUERRE_BLOB_URL",
        "DAGUERRE_S3_ENDPOINT_URL",
    ):
        assert len({env[key] for env in envs}) == 1, key
    assert envs[0]["DAGUERRE_DATABASE_URL"].startswith("postgresql+psycopg://")
    # Blobs in the object store, which every container reaches by name: no shared folder.
    assert envs[0]["DAGUERRE_BLOB_URL"] == "s3://daguerre"
    assert envs[0]["DAGUERRE_S3_ENDPOINT_URL"] == "http://minio:9000"
    for name, svc in services.items():
        assert "DAGUERRE_BLOB_DIR" not in svc["environment"], name
        assert not any(v.startswith("blobs:") for v in svc.get("volumes", [])), name
        assert svc["depends_on"]["minio-bucket"] == {"condition": "service_completed_successfully"}
    bucket = DOC["services"]["minio-bucket"]
    assert "mc mb --ignore-existing local/daguerre" in bucket["command"][0]
