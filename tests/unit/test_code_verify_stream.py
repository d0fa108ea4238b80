"""`suishen code verify` as a stream: verdicts flushed per chunk of input (a caller feeding one
line and waiting gets its verdict before end of input), every line answered in order, and the
command imports only what verifying needs (its start-up time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from suishen.cli import parse
from suishen.protocol.codes import Identity, issue_ssc1
from suishen.protocol.cose import kid_of, spki_der
from suishen.protocol.trust import TrustList, trusted_key_from_public_key

IAT = 1_790_000_000
NOW = "2026-09-21T14:13:50Z"  # IAT + 30 s


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("stream")
    key = ec.generate_private_key(ec.SECP256R1())
    trust = TrustList([trusted_key_from_public_key(key.public_key(), issuer="CN-SH")])
    (root / "trust.json").write_text(json.dumps(trust.to_json()), encoding="utf-8")
    kid = kid_of(spki_der(key.public_key()))
    codes = [
        issue_ssc1(
            identity=Identity(
                idt="RIC", idn=f"3101{i:014d}", nat="CHN", nm="张三明", dob="1990-01-01", st="G"
            ),
            key=key,
            kid=kid,
            iss="CN-SH",
            iat=IAT,
            ttl_s=120,
            cti=bytes([i % 256]) * 16,
        )
        for i in range(300)
    ]
    return root / "trust.json", codes


def _command(trust: Path) -> list[str]:
    return [sys.executable, "-m", "suishen", "code", "verify", "--trust", str(trust), "--now", NOW]


def test_a_line_is_answered_before_the_input_ends(setup) -> None:
    """One line written and the pipe left open: its verdict arrives while the next is pending."""
    trust, codes = setup
    with subprocess.Popen(
        _command(trust), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(codes[0].encode() + b"\n")
        proc.stdin.flush()
        first = json.loads(proc.stdout.readline())
        assert first["ok"] is True and first["iat"] == IAT
        proc.stdin.write(b"hello")  # the last line has no newline
        proc.stdin.close()
        second = json.loads(proc.stdout.readline())
        assert second == {**second, "ok": False, "reason": "malformed_prefix"}
        assert proc.wait(timeout=30) == 0


def test_a_long_stream_is_answered_line_by_line_in_order(setup) -> None:
    """300 codes with blank and CRLF lines among them (more than one read's worth in one
    write): one verdict per non-blank line, in input order, each for its own code."""
    trust, codes = setup
    text = "\n\n".join(codes[:150]) + "\r\n" + "\n".join(codes[150:]) + "\n"
    out = subprocess.run(
        _command(trust), input=text.encode() * 3, capture_output=True, check=True, timeout=120
    )
    verdicts = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(verdicts) == 900
    assert all(v["ok"] for v in verdicts)
    assert [v["cti"] for v in verdicts[:300]] == [bytes([i % 256]).hex() * 16 for i in range(300)]


def test_code_verify_imports_no_other_command() -> None:
    """Parsing `code verify` imports the code command alone: no hub, gateway, drivers, web."""
    script = (
        "import sys\n"
        "from suishen.cli import parse\n"
        "parse(['code', 'verify', '--trust', 'x'])\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('suishen', 'aiohttp', "
        "'structlog', 'asyncpg', 'pymodbus')))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "suishen.commands.code" in loaded
    assert not {
        m for m in loaded if m.startswith("suishen.commands.") and m != "suishen.commands.code"
    }
    assert not {
        m for m in loaded if m.split(".")[0] in ("aiohttp", "structlog", "asyncpg", "pymodbus")
    }


def test_help_and_commands_not_named_like_their_module_still_parse() -> None:
    """`suishen id ...` (module ident) and a typo go through the full parser as before."""
    assert parse(["id", "check"]).command == "id"
    with pytest.raises(SystemExit):
        parse(["cod", "verify"])
