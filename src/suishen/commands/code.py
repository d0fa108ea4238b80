"""`suishen code verify`: verify QR texts from stdin, one JSON verdict a line on stdout.

    suishen code verify --trust trust.json [--now ISO8601] [--formats SSC1,HC1]

Each output line: {"ok", "reason", "format", "kid" (base64), "iss", "iat", "exp", "cti" (hex),
"claims"}. A line that is not a code gets ok=false and its reason; bad input never stops it.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import cbor2

from suishen.protocol.codes import Rejection, VerifyOptions, verify
from suishen.protocol.errors import TrustListError
from suishen.protocol.trust import TrustList, parse_iso8601


def jsonable(value: Any) -> Any:
    """CBOR values as JSON: bytes as base64, tags as {"tag", "value"}."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, cbor2.CBORTag):
        return {"tag": value.tag, "value": jsonable(value.value)}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def verdict_json(text: str, trust: TrustList, now: float, options: VerifyOptions) -> str:
    result = verify(text, trust, now, options)
    if isinstance(result, Rejection):
        out: dict[str, object] = {
            "ok": False,
            "reason": result.reason.value,
            "format": result.format,
            "kid": base64.b64encode(result.kid).decode() if result.kid else None,
            "iss": None,
            "iat": None,
            "exp": None,
            "cti": None,
            "claims": None,
        }
    else:
        out = {
            "ok": True,
            "reason": None,
            "format": result.format,
            "kid": base64.b64encode(result.kid).decode(),
            "iss": result.iss,
            "iat": result.iat,
            "exp": result.exp,
            "cti": result.cti.hex() if result.cti is not None else None,
            "claims": jsonable(result.body),
        }
    return json.dumps(out, ensure_ascii=False)


def _verify(args: argparse.Namespace) -> int:
    try:
        trust = TrustList.from_json(json.loads(Path(args.trust).read_text(encoding="utf-8")))
    except (OSError, ValueError, TrustListError) as exc:
        print(f"suishen code verify: cannot use trust file: {exc}", file=sys.stderr)
        return 2
    formats = frozenset(f.strip() for f in args.formats.split(",") if f.strip())
    options = VerifyOptions(formats=formats)
    fixed_now = parse_iso8601(args.now) if args.now else None
    stdin = sys.stdin.buffer
    for raw in stdin:
        line = raw.decode("utf-8", errors="replace").strip()
        if not line:
            continue
        now = time.time() if fixed_now is None else fixed_now
        print(verdict_json(line, trust, now, options), flush=True)
    return 0


def _parse_now(value: str) -> str:
    try:
        parse_iso8601(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from exc
    return value


def register(sub: Any) -> None:
    parser = sub.add_parser("code", help="verify codes")
    commands = parser.add_subparsers(dest="code_command", required=True, metavar="ACTION")
    verify_cmd = commands.add_parser("verify", help="verify QR texts read from stdin")
    verify_cmd.add_argument("--trust", required=True, help="trust file (JSON)")
    verify_cmd.add_argument("--now", type=_parse_now, help="verify as of this ISO 8601 time")
    verify_cmd.add_argument("--formats", default="SSC1,HC1", help="accepted formats")
    verify_cmd.set_defaults(handler=_verify)
