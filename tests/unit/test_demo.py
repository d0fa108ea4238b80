"""The demo's first stage: each sample code gets the verdict a person at the door expects."""

from __future__ import annotations

from suishen.demo import run_codes_demo


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
