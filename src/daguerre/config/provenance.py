"""The settings section for content credentials: the C2PA manifest every image carries.

Its own section (a mixin of `Settings`, names flat: ``DAGUERRE_PROVENANCE``), as the
workers sign and the operator decides with what: a key and certificate chain of their
own, or, by default, a local certificate authority generated once into the data dir
(enough for a manifest that reads back and validates, though no viewer trusts it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator


class ProvenanceSection(BaseModel):
    """Content credentials (C2PA) on every image a worker stores."""

    provenance: Literal["c2pa", "off"] = Field(
        default="c2pa",
        description="`c2pa`: every stored image carries a signed C2PA manifest saying that "
        "it was generated, by which model and when. `off`: images carry none.",
    )
    provenance_cert_file: Path | None = Field(
        default=None,
        description="PEM certificate chain (signer first) to sign manifests with. None: a "
        "local CA and signer generated once into `<data_dir>/provenance/` (manifests "
        "validate, but viewers report the signer as untrusted).",
    )
    provenance_key_file: Path | None = Field(
        default=None,
        description="PEM private key (EC P-256, ES256) of `provenance_cert_file`.",
    )

    @model_validator(mode="after")
    def _both_or_neither(self) -> ProvenanceSection:
        if (self.provenance_cert_file is None) != (self.provenance_key_file is None):
            raise ValueError(
                "provenance_cert_file and provenance_key_file go together: set both (your "
                "own signing credentials) or neither (a local CA generated for you)"
            )
        return self
