"""`suishen issuer ...`: make issuer keys, codes and trust files (the city app's role, for
tests and the demo).

    suishen issuer keygen --alg ES256|EdDSA --issuer CN-SH --out DIR
    suishen issuer code --key DIR --idt RIC --idn N --nm NAME --dob YYYY-MM-DD --nat CHN --st G
                        [--iat UNIX] [--ttl 120] [--png FILE]
    suishen issuer trustlist DIR... --out trust.json

The issuer directories and codes are made by suishen.demo.issuer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import segno

from suishen.demo.issuer import IssuerKey, build_trust_file, generate_issuer
from suishen.protocol.codes import Identity


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
