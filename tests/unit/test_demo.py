"""The demo's first stage: each sample code gets the verdict a person at the door expects."""

from __future__ import annotations

from suishen.demo.main import run_codes_demo, run_site_demo


def test_demo_verdicts(tmp_path):
    """Fresh codes are accepted; stale, future, tampered, untrusted and junk ones are rejected."""
    rows = {row["case"]: row for row in run_codes_demo(tmp_path)}
    assert rows["fresh code, ES256"]["ok"] is True
    assert rows["fresh code, EdDSA, passport"]["ok"] is True
    expected = {
        "screenshot from 10 min ago": "expired",
        "clock of the phone ahead": "not_yet_valid",
        "status changed after signing": "bad_signature",
        "signed by an untrusted key": "unknown_kid",
        "lifetime of one day": "validity_too_long",
        "a URL, not a code": "malformed_prefix",
    }
    for case, reason in expected.items():
        assert rows[case]["reason"] == reason, case
    # Nothing the demo prints reveals a full document number.
    assert all("11010519491231002X" not in str(row["who"]) for row in rows.values())


async def test_site_demo_decides_like_the_policy_says(tmp_path):
    """Stage 2: the gateway opens for green codes only and journals each reason it denies."""
    rows, status = await run_site_demo(tmp_path)
    got = [(r["verdict"], r["reason"], r["opened"]) for r in rows]
    assert got == [
        ("allow", "-", True),
        ("deny", "status_yellow", False),
        ("deny", "status_red", False),
        ("allow", "-", True),
        ("deny", "anti_passback", False),
        ("deny", "replay", False),
        ("allow", "-", True),
        ("deny", "expired", False),
        ("deny", "malformed_prefix", False),
    ]
    assert status["occupancy"] == {"main": 1}  # two came in, one left
    assert all("张三明" not in str(r["who"]) for r in rows)
