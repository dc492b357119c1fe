"""Signed, expiring image URLs, so an image link works in an <img> tag with no key.

The signature is an HMAC of the image id and the expiry time under a server secret.
With one gateway the secret is generated once into the data dir; several gateways
must share DAGUERRE_URL_SIGNING_SECRET.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from daguerre.config import Settings

SECRET_FILE = "url-signing.key"


def load_or_create_secret(data_dir: Path) -> bytes:
    path = data_dir / SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two gateways starting together must not each write their own secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # the other writer may not have written it yet
            value = path.read_text().strip()
            if value:
                return bytes.fromhex(value)
            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty; delete it to make a new secret") from None
    with os.fdopen(fd, "w") as handle:
        secret = secrets.token_hex(32)
        handle.write(secret)
    return bytes.fromhex(secret)


class UrlSigner:
    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlSigner:
        if settings.url_signing_secret is not None:
            secret = settings.url_signing_secret.get_secret_value().encode()
        else:
            secret = load_or_create_secret(settings.data_dir)
        return cls(secret, settings.image_url_ttl_s)

    def _mac(self, image_id: str, exp: int) -> str:
        msg = f"{image_id}:{exp}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def sign(self, image_id: str, now: float | None = None) -> tuple[int, str]:
        exp = int((now if now is not None else time.time()) + self.ttl_s)
        return exp, self._mac(image_id, exp)

    def verify(self, image_id: str, exp: int, sig: str, now: float | None = None) -> bool:
        if exp < (now if now is not None else time.time()):
            return False
        # As bytes: compare_digest raises on a str with non-ASCII characters (a 500).
        return hmac.compare_digest(self._mac(image_id, exp).encode(), sig.encode())
