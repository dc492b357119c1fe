"""Content credentials: a signed C2PA manifest in every image a worker stores.

The manifest says that the picture was made by a generative model (IPTC's digital
source type ``trainedAlgorithmicMedia``, or ``compositeWithTrainedAlgorithmicMedia``
for an edit of someone's picture), by which model, when, and with what software. It is
signed (ES256) and bound to the image's bytes, so any C2PA reader (``c2patool``, the
Content Authenticity Initiative's verifier, ``c2pa.Reader``) finds it and can tell
whether the image was changed since.

Signing needs a certificate. The operator may configure their own
(``provenance_cert_file`` and ``provenance_key_file``: config/provenance.py). Otherwise a
local certificate authority and a signer certificate are generated once into
``<data_dir>/provenance/`` (0600 files in a 0700 folder), so that every image is signed
from the first run, offline: its manifest validates, and a viewer reports the signer as
not on its trust list, which is true. Partial images and previews are not signed: they
are glimpses of a render in progress, not outputs.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from daguerre.config import Settings
from daguerre.store.private import make_dirs, private_dir

GENERATED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
EDITED = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
CERT_FILE, KEY_FILE = "signer-chain.pem", "signer.key"


@dataclass(frozen=True)
class Credentials:
    chain: bytes  # PEM, the signer's certificate first
    key: bytes  # PEM, PKCS#8


class Provenance:
    """Signs images with one set of credentials (made once per worker process)."""

    def __init__(self, credentials: Credentials) -> None:
        import c2pa  # a native library: loaded by the workers that sign, not the gateway

        self._c2pa = c2pa
        info = c2pa.C2paSignerInfo(
            alg=b"es256", sign_cert=credentials.chain, private_key=credentials.key, ta_url=None
        )
        self._signer = c2pa.Signer.from_info(info)
        # No thumbnail in the manifest: making one decodes, scales and encodes the image
        # again, 45 ms a sign here against 1.6 without, and adds ~30 KB to every image.
        settings = c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}})
        self._context = c2pa.Context(settings)
        # Images are stored from several threads; the native signer is not documented as
        # safe to share between them, and a sign is short (1.6 ms), so one at a time.
        self._lock = threading.Lock()

    def sign(self, data: bytes, media_type: str, model: str, edit: bool) -> bytes:
        """``data`` (an encoded PNG, JPEG or WebP) with its manifest embedded."""
        claim = json.dumps(manifest(model, edit, datetime.now(UTC)))
        builder = self._c2pa.Builder(claim, self._context)
        out = io.BytesIO()
        with self._lock:
            builder.sign(self._signer, media_type, io.BytesIO(data), out)
        return out.getvalue()


def manifest(model: str, edit: bool, when: datetime) -> dict[str, object]:
    """C2PA wants a manifest's first action to be ``created`` (or ``opened``); an edit's
    picture is a new composite, then says it was edited."""
    source = EDITED if edit else GENERATED
    agent = {"name": model}
    actions = [{"action": "c2pa.created", "digitalSourceType": source, "softwareAgent": agent}]
    if edit:
        actions.append(
            {"action": "c2pa.edited", "digitalSourceType": source, "softwareAgent": agent}
        )
    for action in actions:
        action["when"] = when.isoformat()
    return {
        "claim_generator_info": [{"name": "Daguerre", "version": version("daguerre")}],
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}],
    }


def open_provenance(settings: Settings) -> Provenance | None:
    """The signer the settings ask for, or None when provenance is off."""
    if settings.provenance == "off":
        return None
    if settings.provenance_cert_file is not None and settings.provenance_key_file is not None:
        credentials = Credentials(
            settings.provenance_cert_file.read_bytes(), settings.provenance_key_file.read_bytes()
        )
    else:
        credentials = local_credentials(settings.data_dir / "provenance")
    return Provenance(credentials)


def local_credentials(folder: Path) -> Credentials:
    """The local CA's signer, made on first use. Several processes may start at once:
    each makes a set in a folder of its own and renames it into place, and whoever loses
    the race reads the winner's."""
    if not (folder / CERT_FILE).is_file():
        make_dirs(folder.parent)
        staging = Path(tempfile.mkdtemp(prefix=".provenance-", dir=folder.parent))
        chain, key = _new_local_ca_signer()
        for name, data in ((CERT_FILE, chain), (KEY_FILE, key)):
            fd = os.open(staging / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
        try:
            staging.rename(folder)
        except OSError:  # another process got there first: use its set
            for name in (CERT_FILE, KEY_FILE):
                (staging / name).unlink()
            staging.rmdir()
    private_dir(folder)
    return Credentials((folder / CERT_FILE).read_bytes(), (folder / KEY_FILE).read_bytes())


def _new_local_ca_signer() -> tuple[bytes, bytes]:
    """A self-signed CA (10 years) and a signer certificate it issues (2 years) for C2PA:
    EC P-256 keys, the signer's usage digital signature with the email-protection EKU
    that C2PA accepts. Returns (chain PEM, signer key PEM)."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca, signer = _certificates(ca_key, key, datetime.now(UTC))
    pem = serialization.Encoding.PEM
    chain = signer.public_bytes(pem) + ca.public_bytes(pem)
    private = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return chain, private


def _certificates(
    ca_key: ec.EllipticCurvePrivateKey, key: ec.EllipticCurvePrivateKey, now: datetime
) -> tuple[x509.Certificate, x509.Certificate]:
    """(the CA's self-signed certificate, the signer's, issued by the CA)."""

    def name(common: str) -> x509.Name:
        organisation = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Daguerre (local)")
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common), organisation])

    def usage(sign: bool, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(sign, False, False, False, False, ca, ca, False, False)

    def issued(
        subject: str, public: ec.EllipticCurvePublicKey, issuer: x509.Name, days: int
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
        )

    ca = (
        issued("Daguerre local CA", ca_key.public_key(), name("Daguerre local CA"), 3650)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(sign=False, ca=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    signer = (
        issued("Daguerre image signer", key.public_key(), ca.subject, 730)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca, signer
