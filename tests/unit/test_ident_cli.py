"""`suishen id check`: stdin items to JSON lines (run through suishen.cli.main, and once
as a real process to feed it raw bytes)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import pytest

from suishen.cli import main
from suishen.commands.ident import items

TD3 = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
)
TD1 = (
    "I<UTOD231458907<<<<<<<<<<<<<<<",
    "7408122F1204159UTO<<<<<<<<<<<6",
    "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
)


def _run(
    text: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> list[dict[str, Any]]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert main(["id", "check", *args]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return [json.loads(line) for line in out.splitlines()]


def test_id_numbers_one_a_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A list of numbers gives one record each, in order, with age at --at."""
    out = _run(
        "11010519491231002X\n610104620927690\n810000199408230021\n",
        monkeypatch,
        capsys,
        "--at",
        "2024-06-01",
    )
    assert [r["ok"] for r in out] == [True, True, True]
    assert {r["kind"] for r in out} == {"cnid"}
    assert out[0] == {
        "ok": True,
        "kind": "cnid",
        "reason": None,
        "idt": "RIC",
        "number": "11010519491231002X",
        "legacy": None,
        "region_code": "110105",
        "birth_date": "1949-12-31",
        "sex": "F",
        "age": 74,
        "permit_region": None,
        "nationality_code": None,
    }
    assert (out[1]["number"], out[1]["legacy"]) == ("610104196209276908", "610104620927690")
    assert (out[2]["idt"], out[2]["permit_region"]) == ("HMT", "HK")


def test_mrz_blocks_and_bad_input_never_stop_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """MRZ blocks, bad numbers and broken blocks each yield a record; exit status is 0."""
    text = "\n".join(
        [
            *TD3,
            "",
            "440308199901101513",  # bad check digit
            *TD1,
            "hello",
            TD3[0],  # a lone MRZ line, then a blank line
            "",
            "".join(TD3),  # run together
        ]
    )
    out = _run(text, monkeypatch, capsys, "--at", "2024-06-01")
    assert [(r["kind"], r["ok"], r["reason"]) for r in out] == [
        ("mrz", True, None),
        ("cnid", False, "bad_check_digit"),
        ("mrz", True, None),
        ("cnid", False, "bad_length"),
        ("mrz", False, "bad_layout"),
        ("mrz", True, None),
    ]
    td3 = out[0]
    assert (td3["format"], td3["document_number"], td3["surname"]) == (
        "TD3",
        "L898902C3",
        "ERIKSSON",
    )
    assert (td3["birth_date"], td3["expired"], td3["age"]) == ("1974-08-12", True, 49)
    assert td3["codes_known"] is False
    assert all(td3["checks"].values())


def test_failed_check_digits_are_reported_with_the_fields_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad check digit names the failing checks and still shows what was read."""
    line2 = TD3[1][:19] + "3" + TD3[1][20:]
    (record,) = _run(f"{TD3[0]}\n{line2}\n", monkeypatch, capsys)
    assert (record["ok"], record["reason"]) == (False, "bad_check_digit")
    assert record["fields"] == ["birth_date", "composite"]
    assert record["checks"]["birth_date"] is False
    assert record["surname"] == "ERIKSSON"


def test_default_at_is_today(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --at an age is still computed (from the local date, read in the CLI)."""
    (record,) = _run("11010519491231002X\n", monkeypatch, capsys)
    assert record["age"] >= 74


def test_bad_at_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """--at must be YYYY-MM-DD; argparse exits with status 2."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(SystemExit) as exc:
        main(["id", "check", "--at", "June"])
    assert exc.value.code == 2


def test_grouping_rules() -> None:
    """Short lines are numbers; long lines group into blocks by width and count."""
    got = list(items(["1\n", " 2 ", "", *TD1, *TD3, TD3[0], "3", TD1[0], TD1[1], ""]))
    assert got == [
        ("cnid", ["1"]),
        ("cnid", ["2"]),
        ("mrz", list(TD1)),
        ("mrz", list(TD3)),
        ("mrz", [TD3[0]]),
        ("cnid", ["3"]),
        ("mrz", [TD1[0], TD1[1]]),
    ]


def test_raw_bytes_through_the_console_script() -> None:
    """As a process: invalid UTF-8 and CRLF input are survived, nothing goes to stderr."""
    data = b"\xff" + b"1" * 17 + b"\r\n11010519491231002X\r\n" + "\r\n".join(TD1).encode() + b"\r\n"
    proc = subprocess.run(
        [sys.executable, "-m", "suishen", "id", "check", "--at", "2024-06-01"],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stderr == b""
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [(r["kind"], r["ok"]) for r in out] == [("cnid", False), ("cnid", True), ("mrz", True)]
    assert out[0]["reason"] == "bad_character"
