"""Issuer keys, codes and trust files: the city app's role, for tests and the demo.

An issuer directory holds private_key.pem (PKCS#8, unencrypted: this is a test and demo tool,
not a production signer) and trust_entry.json (the key's entry for a trust file).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from suishen.protocol.codes import Identity, issue_ssc1
from suishen.protocol.cose import ALG_BY_NAME, ES256, PrivateKey, kid_of, spki_der
from suishen.protocol.trust import trusted_key_from_public_key

PRIVATE_KEY_FILE = "private_key.pem"
TRUST_ENTRY_FILE = "trust_entry.json"


class IssuerKey:
    """An issuer directory loaded: the signing key, its kid and issuer name."""

    def __init__(self, directory: Path) -> None:
        pem = (directory / PRIVATE_KEY_FILE).read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise TypeError(f"{directory}: key is not EC or Ed25519")
        self.private_key: PrivateKey = key
        entry = json.loads((directory / TRUST_ENTRY_FILE).read_text(encoding="utf-8"))
        self.trust_entry: dict[str, Any] = entry
        self.issuer: str = entry["issuer"]
        self.kid = kid_of(spki_der(key.public_key()))

    def issue(self, identity: Identity, *, iat: int, ttl_s: int = 120) -> str:
        return issue_ssc1(
            identity=identity,
            key=self.private_key,
            kid=self.kid,
            iss=self.issuer,
            iat=iat,
            ttl_s=ttl_s,
            cti=secrets.token_bytes(16),
        )


def generate_issuer(directory: Path, *, alg: str, issuer: str) -> dict[str, Any]:
    """Create a key pair in `directory`; return its trust entry."""
    key: PrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if ALG_BY_NAME[alg] == ES256
        else ed25519.Ed25519PrivateKey.generate()
    )
    directory.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path = directory / PRIVATE_KEY_FILE
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    entry = trusted_key_from_public_key(key.public_key(), issuer=issuer).to_json()
    (directory / TRUST_ENTRY_FILE).write_text(json.dumps(entry, indent=2) + "\n", "utf-8")
    return entry


def build_trust_file(directories: list[Path]) -> dict[str, Any]:
    entries = [json.loads((d / TRUST_ENTRY_FILE).read_text(encoding="utf-8")) for d in directories]
    return {"version": 1, "keys": entries}
