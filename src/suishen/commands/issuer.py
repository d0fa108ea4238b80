"""`suishen issuer ...`: make issuer keys, codes and trust files (the city app's role, for
tests and the demo).

    suishen issuer keygen --alg ES256|EdDSA --issuer CN-SH --out DIR
    suishen issuer code --key DIR --idt RIC --idn N --nm NAME --dob YYYY-MM-DD --nat CHN --st G
                        [--iat UNIX] [--ttl 120] [--png FILE]
    suishen issuer trustlist DIR... --out trust.json

An issuer directory holds private_key.pem (PKCS#8, unencrypted: this is a test and demo tool,
not a production signer) and trust_entry.json (the key's entry for a trust file).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import segno
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


def _keygen(args: argparse.Namespace) -> int:
    entry = generate_issuer(Path(args.out), alg=args.alg, issuer=args.issuer)
    print(json.dumps(entry))
    return 0


def _code(args: argparse.Namespace) -> int:
    try:
        identity = Identity(
            idt=args.idt, idn=args.idn, nat=args.nat, nm=args.nm, dob=args.dob, st=args.st
        )
    except ValueError as exc:
        print(f"suishen issuer code: {exc}", file=sys.stderr)
        return 2
    issuer = IssuerKey(Path(args.key))
    iat = int(time.time()) if args.iat is None else args.iat
    text = issuer.issue(identity, iat=iat, ttl_s=args.ttl)
    if args.png:
        segno.make_qr(text, error="m").save(args.png, scale=4, border=4)
    print(text)
    return 0


def _trustlist(args: argparse.Namespace) -> int:
    document = build_trust_file([Path(d) for d in args.dirs])
    Path(args.out).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser("issuer", help="make issuer keys, codes and trust files")
    commands = parser.add_subparsers(dest="issuer_command", required=True, metavar="ACTION")

    keygen = commands.add_parser("keygen", help="make a signing key and its trust entry")
    keygen.add_argument("--alg", choices=["ES256", "EdDSA"], default="ES256")
    keygen.add_argument("--issuer", required=True, help='issuer name, e.g. "CN-SH"')
    keygen.add_argument("--out", required=True, help="directory to write the key into")
    keygen.set_defaults(handler=_keygen)

    code = commands.add_parser("code", help="issue a signed Suishen code (prints the QR text)")
    code.add_argument("--key", required=True, help="issuer directory made by keygen")
    code.add_argument("--idt", required=True, choices=["RIC", "PP", "HMT", "FPR"])
    code.add_argument("--idn", required=True, help="document number")
    code.add_argument("--nm", required=True, help="name")
    code.add_argument("--dob", required=True, help="date of birth, YYYY-MM-DD")
    code.add_argument("--nat", default="CHN", help="nationality, ISO 3166-1 alpha-3")
    code.add_argument("--st", default="G", choices=["G", "Y", "R"], help="status colour")
    code.add_argument("--iat", type=int, help="issued-at, UNIX seconds (default: now)")
    code.add_argument("--ttl", type=int, default=120, help="lifetime in seconds (max 300)")
    code.add_argument("--png", help="also write the QR code image to this PNG file")
    code.set_defaults(handler=_code)

    trust = commands.add_parser("trustlist", help="combine issuer directories into a trust file")
    trust.add_argument("dirs", nargs="+", metavar="DIR")
    trust.add_argument("--out", required=True)
    trust.set_defaults(handler=_trustlist)
