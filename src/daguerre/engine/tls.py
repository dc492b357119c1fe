"""How the Temporal client reaches a cluster that is not the local dev server: TLS, mutual
TLS and Temporal Cloud API keys, from the ``temporal_tls*`` and ``temporal_api_key``
settings.

The settings are checked when they load (config/runtime.py), so a wrong combination
stops a process at start-up. The files are read here, when a process connects; the SDK
keeps those bytes for its own reconnects, so a renewed certificate needs a restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import TLSConfig

from daguerre.config import Settings


class TemporalTLSError(ValueError):
    """A TLS file named by a setting could not be read. A ValueError, not a RuntimeError:
    retrying a connect would not fix it (workers retry RuntimeErrors)."""


def _read(settings: Settings, name: str) -> bytes | None:
    path: Path | None = getattr(settings, name)
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as err:
        raise TemporalTLSError(f"{name}: cannot read {path}: {err.strerror or err}") from None


def uses_tls(settings: Settings) -> bool:
    """On when asked, or when anything that only works over TLS is set."""
    if settings.temporal_tls is not None:
        return settings.temporal_tls
    return bool(
        settings.temporal_api_key
        or settings.temporal_tls_ca_file
        or settings.temporal_tls_cert_file
        or settings.temporal_tls_key_file
        or settings.temporal_tls_server_name
    )


def connect_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of ``Client.connect`` beyond address and namespace: ``tls``
    (False, or a TLSConfig with the files' bytes) and ``api_key``."""
    api_key = settings.temporal_api_key
    options: dict[str, Any] = {
        "api_key": api_key.get_secret_value() if api_key is not None else None,
        "tls": False,
    }
    if uses_tls(settings):
        options["tls"] = TLSConfig(
            server_root_ca_cert=_read(settings, "temporal_tls_ca_file"),
            client_cert=_read(settings, "temporal_tls_cert_file"),
            client_private_key=_read(settings, "temporal_tls_key_file"),
            domain=settings.temporal_tls_server_name,
        )
    return options
