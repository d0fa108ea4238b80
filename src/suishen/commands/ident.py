"""`suishen id check`: parse PRC identity numbers and ICAO 9303 MRZs from stdin.

Input, one item at a time (whitespace around a line is ignored):

- a line shorter than 30 characters is one identity number (RIC, 15-digit legacy, HMT
  or FPR), so a plain list of numbers, one a line, works;
- consecutive lines of 30 or more characters form one MRZ block, complete after 3 lines
  of 30 (TD1) or 2 lines of 36 (TD2) or 44 (TD3); a blank line, a short line or a line of
  another width ends a block early (it is then reported as ``bad_layout``);
- a single line of 72, 88 or 90 characters is an MRZ with its lines run together.

Output: one JSON object a line, ``{"ok": bool, "kind": "cnid"|"mrz", "reason": null or a
reason code, ...fields}``, in input order.  The command never stops on bad input
(undecodable bytes are replaced, not fatal) and always exits 0 once stdin is exhausted.

This is an operator's check tool, so it prints full numbers and names to stdout; it
logs nothing, and nothing it writes to stderr contains input text.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any

from suishen.protocol.identity.cnid import CnidNumber, parse_cnid
from suishen.protocol.identity.mrz import Mrz, MrzFormat, MrzRejection, parse_mrz

_MRZ_MIN_WIDTH = 30
_COMPLETE = {(3, 30), (2, 36), (2, 44)}
_RUN_TOGETHER = {72, 88, 90}


def register(sub: Any) -> None:
    """Add the `id` group and its `check` command to the top-level subparsers."""
    group = sub.add_parser("id", help="identity documents (PRC ID numbers, passport MRZs)")
    commands = group.add_subparsers(dest="id_command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="parse ID numbers and MRZ blocks from stdin, one JSON line each",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "--at",
        type=_iso_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="the day ages and expiry are computed for (default: today, local time)",
    )
    check.set_defaults(handler=run_check)


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a date as YYYY-MM-DD") from None


def _stdin_lines() -> Iterator[str]:
    """Lines of stdin; bytes that are not UTF-8 are replaced rather than fatal."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # a text stream without bytes underneath (tests, embedding)
        yield from sys.stdin
        return
    for raw in buffer:
        yield raw.decode("utf-8", errors="replace")


def items(lines: Iterable[str]) -> Iterator[tuple[str, list[str]]]:
    """Group input lines into ("cnid", [line]) and ("mrz", [lines...]) items."""
    pending: list[str] = []
    for raw in lines:
        line = raw.strip()
        if pending and (not line or len(line) != len(pending[0])):
            yield "mrz", pending
            pending = []
        if not line:
            continue
        if len(line) < _MRZ_MIN_WIDTH:
            yield "cnid", [line]
            continue
        if not pending and len(line) in _RUN_TOGETHER:
            yield "mrz", [line]
            continue
        pending.append(line)
        if (len(pending), len(line)) in _COMPLETE or len(pending) >= 3:
            yield "mrz", pending
            pending = []
    if pending:
        yield "mrz", pending


def cnid_record(text: str, at: date) -> dict[str, Any]:
    """The JSON record for one identity number."""
    result = parse_cnid(text, at=at)
    if not isinstance(result, CnidNumber):
        return {"ok": False, "kind": "cnid", "reason": str(result.reason), "length": result.length}
    return {
        "ok": True,
        "kind": "cnid",
        "reason": None,
        "idt": str(result.kind),
        "number": result.number,
        "legacy": result.legacy,
        "region_code": result.region_code,
        "birth_date": result.birth_date.isoformat(),
        "sex": result.sex,
        "age": result.age,
        "permit_region": result.permit_region,
        "nationality_code": result.nationality_code,
    }


def _mrz_fields(doc: Mrz) -> dict[str, Any]:
    return {
        "document_code": doc.document_code,
        "issuing_state": doc.issuing_state,
        "document_number": doc.document_number,
        "surname": doc.surname,
        "given_names": doc.given_names,
        "nationality": doc.nationality,
        "birth_date": None if doc.birth_date is None else doc.birth_date.isoformat(),
        "birth_date_raw": doc.birth_date_raw,
        "sex": doc.sex,
        "expiry_date": None if doc.expiry_date is None else doc.expiry_date.isoformat(),
        "expiry_date_raw": doc.expiry_date_raw,
        "expired": doc.expired,
        "age": doc.age,
        "optional_data": doc.optional_data,
        "optional_data_2": doc.optional_data_2,
        "codes_known": doc.codes_known,
        "checks": {c.name: c.ok for c in doc.checks},
    }


def mrz_record(lines: list[str], at: date) -> dict[str, Any]:
    """The JSON record for one MRZ block."""
    result = parse_mrz(lines, at=at)
    if isinstance(result, MrzRejection):
        record: dict[str, Any] = {
            "ok": False,
            "kind": "mrz",
            "reason": str(result.reason),
            "format": None if result.format is None else str(result.format),
            "fields": list(result.fields),
        }
        if result.document is not None:  # only check digits failed: show what was read
            record.update(_mrz_fields(result.document))
        return record
    fmt: MrzFormat = result.format
    return {"ok": True, "kind": "mrz", "reason": None, "format": str(fmt), **_mrz_fields(result)}


def run_check(args: argparse.Namespace) -> int:
    """Handler of `suishen id check`."""
    at: date = args.at if args.at is not None else datetime.now(UTC).astimezone().date()
    out = sys.stdout
    for kind, lines in items(_stdin_lines()):
        record = cnid_record(lines[0], at) if kind == "cnid" else mrz_record(lines, at)
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
    return 0
