"""Content credentials: every stored image carries a signed C2PA manifest that a C2PA
reader finds, validates, and reads as made by a generative model."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path
from typing import Any

import c2pa
import numpy as np
import pytest
from PIL import Image

from daguerre.config import Settings
from daguerre.workers import imaging
from daguerre.workers.provenance import (
    CERT_FILE,
    EDITED,
    GENERATED,
    KEY_FILE,
    local_credentials,
    open_provenance,
)

FORMATS = [("png", "image/png"), ("jpeg", "image/jpeg"), ("webp", "image/webp")]


def picture() -> Image.Image:
    image = Image.new("RGB", (64, 64), (255, 255, 255))
    image.paste((220, 30, 30), (16, 16, 48, 48))
    return image


def read_manifest(data: bytes, media_type: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the active manifest, the whole report) as a C2PA reader sees them."""
    report = json.loads(c2pa.Reader(media_type, io.BytesIO(data)).json())
    return report["manifests"][report["active_manifest"]], report


def actions_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    (assertion,) = [a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions")]
    return list(assertion["data"]["actions"])


@pytest.mark.parametrize(("fmt", "media_type"), FORMATS)
def test_a_signed_image_says_it_was_generated_by_which_model(
    tmp_path: Path, fmt: str, media_type: str
) -> None:
    provenance = open_provenance(Settings(data_dir=tmp_path))
    assert provenance is not None
    plain = imaging.encode(picture(), fmt)
    signed = provenance.sign(plain, media_type, "builtin", edit=False)
    manifest, report = read_manifest(signed, media_type)
    (action,) = actions_of(manifest)
    assert action["action"] == "c2pa.created"
    assert action["digitalSourceType"] == GENERATED
    assert action["softwareAgent"]["name"] == "builtin"
    assert manifest["claim_generator_info"][0]["name"] == "Daguerre"
    # Valid and bound to these bytes; the local CA is simply on nobody's trust list.
    assert report["validation_state"] == "Valid"
    codes = {s["code"] for s in report.get("validation_status", [])}
    assert codes <= {"signingCredential.untrusted"}
    # Still the same picture.
    decoded = np.asarray(Image.open(io.BytesIO(signed)).convert("RGB"))
    assert (decoded == np.asarray(Image.open(io.BytesIO(plain)).convert("RGB"))).all()


def test_an_edit_is_credited_as_a_composite(tmp_path: Path) -> None:
    provenance = open_provenance(Settings(data_dir=tmp_path))
    assert provenance is not None
    signed = provenance.sign(imaging.encode(picture(), "png"), "image/png", "builtin", edit=True)
    created, edited = actions_of(read_manifest(signed, "image/png")[0])
    assert (created["action"], created["digitalSourceType"]) == ("c2pa.created", EDITED)
    assert (edited["action"], edited["digitalSourceType"]) == ("c2pa.edited", EDITED)


def test_a_tampered_image_no_longer_validates(tmp_path: Path) -> None:
    provenance = open_provenance(Settings(data_dir=tmp_path))
    assert provenance is not None
    signed = bytearray(provenance.sign(imaging.encode(picture(), "jpeg"), "image/jpeg", "m", False))
    signed[-200] ^= 0xFF  # a byte of the picture itself, past the manifest
    _, report = read_manifest(bytes(signed), "image/jpeg")
    assert report["validation_state"] == "Invalid"
    assert "assertion.dataHash.mismatch" in {s["code"] for s in report["validation_status"]}


def test_the_local_ca_is_made_once_and_kept_private(tmp_path: Path) -> None:
    folder = tmp_path / "provenance"
    first = local_credentials(folder)
    assert local_credentials(folder) == first  # read back, not made again
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in (CERT_FILE, KEY_FILE):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    assert first.chain.count(b"BEGIN CERTIFICATE") == 2  # the signer, then the CA


def test_configured_credentials_are_used(tmp_path: Path) -> None:
    made = local_credentials(tmp_path / "elsewhere")
    cert, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    cert.write_bytes(made.chain)
    key.write_bytes(made.key)
    settings = Settings(data_dir=tmp_path, provenance_cert_file=cert, provenance_key_file=key)
    provenance = open_provenance(settings)
    assert provenance is not None
    provenance.sign(imaging.encode(picture(), "png"), "image/png", "builtin", edit=False)
    assert not (tmp_path / "provenance").exists()  # no local CA made


def test_provenance_can_be_turned_off_and_needs_both_files(tmp_path: Path) -> None:
    assert open_provenance(Settings(data_dir=tmp_path, provenance="off")) is None
    with pytest.raises(ValueError, match="go together"):
        Settings(data_dir=tmp_path, provenance_cert_file=tmp_path / "chain.pem")
