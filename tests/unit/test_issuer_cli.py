"""The CLI contract: issuer keygen/code/trustlist and code verify, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SUISHEN = [sys.executable, "-m", "suishen"]


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SUISHEN, *args], input=stdin, capture_output=True, text=True, check=False, timeout=60
    )


@pytest.fixture(scope="module")
def issuers(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("issuers")
    for name, alg in (("es", "ES256"), ("ed", "EdDSA")):
        result = run(
            "issuer", "keygen", "--alg", alg, "--issuer", "CN-SH", "--out", str(root / name)
        )
        assert result.returncode == 0, result.stderr
        entry = json.loads(result.stdout)
        assert entry["issuer"] == "CN-SH" and "spki" in entry and "kid" in entry
        assert (root / name / "private_key.pem").stat().st_mode & 0o077 == 0
    result = run(
        "issuer", "trustlist", str(root / "es"), str(root / "ed"), "--out", str(root / "trust.json")
    )
    assert result.returncode == 0, result.stderr
    return root


def issue(issuers: Path, key: str, *extra: str) -> str:
    result = run(
        "issuer",
        "code",
        "--key",
        str(issuers / key),
        "--idt",
        "RIC",
        "--idn",
        "11010519491231002X",
        "--nm",
        "张三明",
        "--dob",
        "1949-12-31",
        "--nat",
        "CHN",
        "--st",
        "G",
        *extra,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_issue_then_verify_both_algorithms(issuers):
    """Codes from an ES256 and an EdDSA issuer verify ok with all contract fields."""
    texts = [
        issue(issuers, "es", "--iat", "1790000000"),
        issue(issuers, "ed", "--iat", "1790000000"),
    ]
    out = run(
        "code",
        "verify",
        "--trust",
        str(issuers / "trust.json"),
        "--now",
        "2026-09-21T14:13:50Z",
        stdin="\n".join(texts) + "\n",
    )
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert set(line) == {"ok", "reason", "format", "kid", "iss", "iat", "exp", "cti", "claims"}
        assert line["ok"] is True and line["reason"] is None and line["format"] == "SSC1"
        assert line["iat"] == 1790000000 and line["exp"] == 1790000120
        assert len(bytes.fromhex(line["cti"])) == 16
        assert line["claims"]["nm"] == "张三明"


def test_verify_never_stops_on_bad_input(issuers):
    """Garbage, binary junk and expired codes each get ok=false and a reason; all lines answered."""
    good = issue(issuers, "es", "--iat", "1790000000")
    stdin = "\n".join(["hello", "SSC1:@@@", "\x00\x01", "HC1:" + "Z" * 5000, good]) + "\n"
    out = run(
        "code",
        "verify",
        "--trust",
        str(issuers / "trust.json"),
        "--now",
        "2030-01-01T00:00:00Z",
        stdin=stdin,
    )
    assert out.returncode == 0, out.stderr
    reasons = [json.loads(line)["reason"] for line in out.stdout.splitlines()]
    assert reasons == [
        "malformed_prefix",
        "malformed_base45",
        "malformed_prefix",
        "oversize",
        "expired",
    ]


def test_formats_option_refuses_hc1(issuers):
    """--formats SSC1 makes an HC1 text format_not_accepted."""
    out = run(
        "code",
        "verify",
        "--trust",
        str(issuers / "trust.json"),
        "--formats",
        "SSC1",
        stdin="HC1:6BFOXN%TS3DH\n",
    )
    assert json.loads(out.stdout)["reason"] == "format_not_accepted"


def test_png_output_is_a_png(issuers, tmp_path):
    """--png writes a PNG image of the code."""
    png = tmp_path / "code.png"
    issue(issuers, "ed", "--png", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_identity_is_a_usage_error(issuers):
    """An impossible date of birth is refused with exit code 2 and a message."""
    result = run(
        "issuer",
        "code",
        "--key",
        str(issuers / "es"),
        "--idt",
        "RIC",
        "--idn",
        "1",
        "--nm",
        "x",
        "--dob",
        "yesterday",
    )
    assert result.returncode == 2 and "dob" in result.stderr
