"""The lane hardening settings (scan age limit, discard interval, TCP scanner idle timeout
and allowed peers): parsed, range-checked, documented in SETTINGS.md."""

from __future__ import annotations

from pathlib import Path

from suishen.gateway.config import TcpScannerSettings, parse_config
from tests.unit.test_config import minimal, problems

SETTINGS_MD = Path(__file__).resolve().parents[2] / "deploy" / "config" / "SETTINGS.md"


def test_defaults_and_values() -> None:
    """Absent: a 2 s scan age limit, one discard record a second, a 600 s idle timeout and
    any peer; given: the values, allowed peers as addresses or CIDR networks."""
    config = parse_config(minimal())
    lane = config.lanes[0]
    assert (lane.scan_max_age_s, lane.discard_interval_s) == (2.0, 1.0)
    assert isinstance(lane.scanner, TcpScannerSettings)
    assert (lane.scanner.idle_timeout_s, lane.scanner.allowed_peers) == (600.0, ())
    data = minimal()
    data["lanes"][0] |= {"scan_max_age_s": 1.5, "discard_interval_s": 5}
    data["lanes"][0]["scanner"] |= {"idle_timeout_s": 30, "allowed_peers": ["127.0.0.2", "::1"]}
    lane = parse_config(data).lanes[0]
    assert (lane.scan_max_age_s, lane.discard_interval_s) == (1.5, 5.0)
    assert isinstance(lane.scanner, TcpScannerSettings)
    assert lane.scanner.allowed_peers == ("127.0.0.2", "::1")


def test_bad_values_name_the_setting() -> None:
    """A scan age limit of 0, a negative idle timeout and a host name as an allowed peer are
    each reported at their key path."""
    data = minimal()
    data["lanes"][0]["scan_max_age_s"] = 0
    data["lanes"][0]["scanner"] |= {"idle_timeout_s": -1}
    found = problems(data)
    assert "lanes[0].scan_max_age_s" in found
    assert "lanes[0].scanner.idle_timeout_s" in found
    data = minimal()
    data["lanes"][0]["scanner"] |= {"allowed_peers": ["127.0.0.1", "scanner.local"]}
    found = problems(data)
    assert "not an IP address" in found["lanes[0].scanner.allowed_peers"]


def test_settings_md_documents_them() -> None:
    """Every new setting has its row in deploy/config/SETTINGS.md."""
    text = SETTINGS_MD.read_text(encoding="utf-8")
    for name in ("scan_max_age_s", "discard_interval_s", "idle_timeout_s", "allowed_peers"):
        assert f"| `{name}` |" in text, name
