"""`suishen code verify`: verify QR texts from stdin, one JSON verdict a line on stdout.

    suishen code verify --trust trust.json [--now ISO8601] [--formats SSC1,HC1]

Each output line: {"ok", "reason", "format", "kid" (base64), "iss", "iat", "exp", "cti" (hex),
"claims"}. A line that is not a code gets ok=false and its reason; bad input never stops it.

Input is read as it arrives and the verdicts of all the lines that came together are written
and flushed together: a stream of 20,000 codes costs a write per chunk, not per line, while a
program feeding one line and waiting still gets its verdict at once.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import time
from typing import Any, cast

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


def verdict(text: str, trust: TrustList, now: float, options: VerifyOptions) -> dict[str, object]:
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
    return out


def _verify(args: argparse.Namespace) -> int:
    try:
        # open(), not pathlib: pathlib's imports (urllib, ipaddress) are ~5% of the start-up.
        with open(args.trust, encoding="utf-8") as file:  # noqa: PTH123
            trust = TrustList.from_json(json.load(file))
    except (OSError, ValueError, TrustListError) as exc:
        print(f"suishen code verify: cannot use trust file: {exc}", file=sys.stderr)
        return 2
    formats = frozenset(f.strip() for f in args.formats.split(",") if f.strip())
    options = VerifyOptions(formats=formats)
    fixed_now = parse_iso8601(args.now) if args.now else None
    stdin, stdout = cast(io.BufferedReader, sys.stdin.buffer), sys.stdout.buffer
    pending = b""
    encode = None
    while True:
        chunk = stdin.read1(1 << 16)  # what has arrived (blocks only when nothing has)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop() if chunk else b""
        out = []
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            if encode is None:  # msgspec at the first verdict: a fifth of the start-up
                import msgspec  # noqa: PLC0415

                # UTF-8 as is (like json's ensure_ascii=False); a NaN float becomes null.
                encode = msgspec.json.Encoder().encode
            now = time.time() if fixed_now is None else fixed_now
            out.append(encode(verdict(line, trust, now, options)))
        if out:
            stdout.write(b"\n".join(out) + b"\n")
            stdout.flush()
        if not chunk:
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
