from __future__ import annotations

from pathlib import Path

from daguerre.gateway.services.signing import UrlSigner, load_or_create_secret


def test_sign_and_verify() -> None:
    signer = UrlSigner(b"secret", ttl_s=60)
    exp, sig = signer.sign("img-1", now=1000)
    assert exp == 1060
    assert signer.verify("img-1", exp, sig, now=1059)
    assert not signer.verify("img-1", exp, sig, now=1061)
    assert not signer.verify("img-2", exp, sig, now=1000)
    assert not signer.verify("img-1", exp + 1, sig, now=1000)
    assert not UrlSigner(b"other", 60).verify("img-1", exp, sig, now=1000)


def test_secret_is_made_once_and_kept_private(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path)
    assert load_or_create_secret(tmp_path) == first
    assert len(first) == 32
    assert (tmp_path / "url-signing.key").stat().st_mode & 0o777 == 0o600
