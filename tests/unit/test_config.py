"""The gateway config: examples load, every setting is documented, errors name their key path."""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from suishen.gateway.config import (
    ConfigError,
    GatewayConfig,
    ModbusGateSettings,
    NoGateSettings,
    SerialScannerSettings,
    iter_settings,
    load_config,
    parse_config,
    settings_markdown,
)
from suishen.gateway.records import Direction, ScanFormat, SiteKind

CONFIG_DIR = Path(__file__).resolve().parents[2] / "deploy" / "config"
EXAMPLES = sorted(p for p in CONFIG_DIR.glob("*.toml") if p.name != "hub.toml")  # gateways


def minimal() -> dict[str, Any]:
    """The smallest valid config, as parsed TOML."""
    return {
        "gateway": {"id": "gw-1"},
        "site": {"id": "site-1", "kind": "building"},
        "lanes": [
            {
                "id": "in-1",
                "direction": "in",
                "scanner": {"kind": "tcp", "mode": "listen", "port": 0},
                "gate": {"kind": "modbus", "url": "tcp://127.0.0.1:1502"},
            }
        ],
        "lists": {"bundle_key_file": "keys/bundle.pub"},
        "privacy": {"pepper_env": "SUISHEN_PEPPER", "hub_seal_key_file": "keys/seal.pub"},
    }


def problems(data: dict[str, Any]) -> dict[str, str]:
    """The problems parsing `data` reports, by key path."""
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return {p.path: p.message for p in info.value.problems}


def with_lanes(n: int) -> dict[str, Any]:
    data = minimal()
    data["lanes"] = [
        {
            "id": f"lane-{i}",
            "direction": "in",
            "scanner": {"kind": "tcp", "mode": "listen", "port": 7000 + i},
            "gate": {"kind": "modbus", "url": f"tcp://127.0.0.1:{1500 + i}"},
        }
        for i in range(n)
    ]
    return data


# --------------------------------------------------------------------------- examples


def test_the_four_example_sites_are_there() -> None:
    """deploy/config holds the office, construction, hotel and venue examples."""
    assert {p.stem for p in EXAMPLES} >= {"office-building", "construction-site", "hotel", "venue"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_each_example_loads_and_validates(path: Path) -> None:
    """Every example config loads into a GatewayConfig without a problem."""
    config = load_config(path)
    assert isinstance(config, GatewayConfig)
    assert config.lanes
    assert config.http.host == "127.0.0.1"


def test_examples_describe_their_sites() -> None:
    """The examples have the lanes and rules their issue asks for."""
    office = load_config(CONFIG_DIR / "office-building.toml")
    assert office.site.kind is SiteKind.BUILDING
    assert [lane.direction for lane in office.lanes].count(Direction.IN) == 2
    assert len(office.lanes) == 4
    assert office.site.rules.capacity_hard == 1200

    venue = load_config(CONFIG_DIR / "venue.toml")
    assert venue.site.kind is SiteKind.VENUE
    assert len(venue.lanes) == 8
    assert venue.site.rules.capacity_hard is not None
    assert venue.site.rules.capacity_soft is not None

    hotel = load_config(CONFIG_DIR / "hotel.toml")
    directions = {lane.direction for lane in hotel.lanes}
    assert {Direction.CHECKIN, Direction.CHECKOUT, Direction.IN} <= directions
    desk = next(lane for lane in hotel.lanes if lane.direction is Direction.CHECKIN)
    assert isinstance(desk.scanner, SerialScannerSettings)
    assert isinstance(desk.gate, NoGateSettings)
    assert {ScanFormat.MRZ, ScanFormat.CNID} <= hotel.site.rules.accepted_formats(SiteKind.HOTEL)

    site = load_config(CONFIG_DIR / "construction-site.toml")
    assert site.site.kind is SiteKind.CONSTRUCTION
    kinds = {lane.scanner.kind for lane in site.lanes}
    assert {"uhppote", "osdp"} & kinds
    assert sum(isinstance(lane.gate, ModbusGateSettings) for lane in site.lanes) == 2
    assert ScanFormat.CARD in site.site.rules.accepted_formats(SiteKind.CONSTRUCTION)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_use_loopback_relative_paths_and_no_inline_secrets(path: Path) -> None:
    """Examples name only 127.0.0.1, only relative paths, and secrets by file or env name."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    for text in _strings(data):
        assert not text.startswith(("/", "~")), text
        for address in re.findall(r"\d+\.\d+\.\d+\.\d+", text):
            assert ipaddress.IPv4Address(address).is_loopback, text
        assert "localhost" not in text
    assert "pepper" not in data["privacy"]
    assert {"pepper_file", "pepper_env"} & set(data["privacy"])
    for bus in data.get("osdp", []):
        for reader in bus["readers"]:
            assert "scbk" not in reader


def test_relative_paths_are_taken_from_the_config_files_directory() -> None:
    """A relative path setting resolves against the directory of the file it is in."""
    config = load_config(CONFIG_DIR / "venue.toml")
    assert config.lists.directory == CONFIG_DIR / "state" / "lists"
    assert config.privacy.pepper_file == CONFIG_DIR / "secrets" / "pepper"


# --------------------------------------------------------------------------- documentation


def test_every_setting_has_help_text_and_a_default_or_required_marker() -> None:
    """datasette-style: walk the whole tree; a setting without help text fails the test."""
    seen = 0
    undocumented = []
    for path, _cls, fields in iter_settings(GatewayConfig):
        for f, _tp in fields:
            seen += 1
            help_text = f.metadata.get("help")
            if not isinstance(help_text, str) or len(help_text.strip()) < 3:
                undocumented.append(f"{path}.{f.name}" if path else f.name)
            has_default = (
                f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            )
            row = re.search(rf"^\| `{re.escape(f.name)}` \|.*$", settings_markdown(), re.M)
            assert row is not None
            assert has_default or "**required**" in row.group(0)
    assert not undocumented, f"settings without help: {undocumented}"
    assert seen > 80


def test_settings_md_is_generated_from_the_tree() -> None:
    """deploy/config/SETTINGS.md is exactly settings_markdown(): the docs cannot drift."""
    committed = (CONFIG_DIR / "SETTINGS.md").read_text(encoding="utf-8")
    assert committed == settings_markdown(), (
        "regenerate: suishen gateway settings > deploy/config/SETTINGS.md"
    )


def test_settings_md_documents_every_section() -> None:
    """Every section, device kind and embedded module config has its own table."""
    text = settings_markdown()
    for heading in (
        "## `gateway`",
        "## `site.rules`",
        "## `lanes[]`",
        '## `lanes[].scanner` (kind = "serial")',
        '## `lanes[].gate` (kind = "modbus")',
        '## `lanes[].gate` (kind = "none")',
        "## `osdp[].readers[]`",
        "## `journal`",
        "## `hub`",
    ):
        assert heading in text


# --------------------------------------------------------------------------- errors


def test_the_minimal_config_is_valid_with_defaults() -> None:
    """Defaults fill everything not given: loopback HTTP, offline, SSC1 only, zone main."""
    config = parse_config(minimal())
    assert config.http.host == "127.0.0.1"
    assert config.hub is None
    assert config.site.rules.accepted_formats(SiteKind.BUILDING) == frozenset({ScanFormat.SSC1})
    assert config.verify.clock_skew_s == 60
    assert config.lanes[0].zone == "main"
    assert config.lanes[0].indicator is None


def test_out_of_range_names_the_key_path() -> None:
    """A coil of -1 on the third lane says where and what is allowed."""
    data = with_lanes(3)
    data["lanes"][2]["gate"]["coil"] = -1
    assert problems(data) == {"lanes[2].gate.coil": "must be 0..65535, got -1"}


@pytest.mark.parametrize(
    "scanner",
    [
        {"kind": "tcp", "mode": "connect", "host": "127.0.0.1", "port": 7000},
        {"kind": "serial", "url": "/dev/ttyUSB0"},
    ],
    ids=["tcp", "serial"],
)
def test_a_reconnect_cap_below_the_first_delay_is_refused(scanner: dict[str, Any]) -> None:
    """A scanner's longest reconnect delay may not be shorter than its first one."""
    data = minimal()
    data["lanes"][0]["scanner"] = {**scanner, "reconnect_initial_s": 2.0, "reconnect_max_s": 1.0}
    assert problems(data) == {
        "lanes[0].scanner.reconnect_max_s": "must be at least reconnect_initial_s"
    }


def test_unknown_key_is_an_error_with_a_suggestion() -> None:
    """A typo does not pass silently; a close match is suggested."""
    data = minimal()
    data["lanes"][0]["directon"] = "in"
    data["site"]["rules"] = {"capacity_hrad": 10}
    data["gateway"]["colour"] = "red"
    found = problems(data)
    assert found["lanes[0].directon"] == "unknown setting (did you mean 'direction'?)"
    assert found["site.rules.capacity_hrad"] == ("unknown setting (did you mean 'capacity_hard'?)")
    assert found["gateway.colour"] == "unknown setting"


def test_unknown_top_level_section_is_an_error() -> None:
    """A misspelt section is reported like any unknown key."""
    data = minimal()
    data["lane"] = []
    assert problems(data)["lane"] == "unknown setting (did you mean 'lanes'?)"


def test_wrong_type_names_the_key_path() -> None:
    """A string where a number belongs, a number where a boolean belongs."""
    data = minimal()
    data["lanes"][0]["passage_timeout_s"] = "5"
    data["lanes"][0]["has_passage_sensor"] = 1
    data["site"]["rules"] = {"formats": "SSC1"}
    found = problems(data)
    assert found["lanes[0].passage_timeout_s"] == "must be a number, got a string ('5')"
    assert found["lanes[0].has_passage_sensor"] == "must be true or false, got an integer (1)"
    assert found["site.rules.formats"] == "must be an array, got a string ('SSC1')"


def test_bad_enum_lists_the_choices() -> None:
    """An unknown direction or format names the accepted values."""
    data = minimal()
    data["lanes"][0]["direction"] = "sideways"
    data["site"]["rules"] = {"formats": ["SSC1", "QR"]}
    found = problems(data)
    assert found["lanes[0].direction"] == (
        "must be one of 'in', 'out', 'checkin', 'checkout', got a string ('sideways')"
    )
    assert found["site.rules.formats[1]"].startswith("must be one of 'SSC1', 'HC1'")


def test_missing_required_settings_are_named() -> None:
    """Each missing required setting is reported at its path, all at once."""
    data = minimal()
    del data["gateway"]["id"]
    del data["lanes"][0]["direction"]
    data["lanes"][0]["scanner"] = {"kind": "serial"}
    del data["lists"]
    found = problems(data)
    assert found == {
        "gateway.id": "missing required setting",
        "lanes[0].direction": "missing required setting",
        "lanes[0].scanner.url": "missing required setting",
        "lists": "missing required setting",
    }


def test_duplicate_lane_id_names_both_lanes() -> None:
    """Two lanes with one id: the later one is reported, pointing at the first."""
    data = with_lanes(3)
    data["lanes"][2]["id"] = "lane-0"
    assert problems(data) == {
        "lanes[2].id": "duplicate lane id 'lane-0' (also lanes[0].id)",
    }


def test_device_kind_is_checked() -> None:
    """A device table needs a known kind."""
    data = with_lanes(2)
    data["lanes"][0]["gate"] = {"kind": "relay"}
    del data["lanes"][1]["scanner"]["kind"]
    found = problems(data)
    assert found["lanes[0].gate.kind"] == (
        "must be one of 'modbus', 'uhppote', 'osdp', 'none', got a string ('relay')"
    )
    assert found["lanes[1].scanner.kind"].startswith("missing required setting (one of 'serial'")


def test_a_device_only_accepts_its_own_kinds_settings() -> None:
    """A Modbus setting on a UHPPOTE gate is an unknown key there."""
    data = minimal()
    data["uhppote"] = [{"id": "ctl", "serial": 405419896}]
    data["lanes"][0]["gate"] = {"kind": "uhppote", "controller": "ctl", "coil": 1}
    assert problems(data) == {"lanes[0].gate.coil": "unknown setting"}


def test_references_between_sections_resolve() -> None:
    """Lane devices name controllers, buses and zones that exist."""
    data = with_lanes(3)
    data["lanes"][0]["scanner"] = {"kind": "uhppote", "controller": "nope"}
    data["lanes"][1]["scanner"] = {"kind": "osdp", "bus": "nope", "address": 1}
    data["lanes"][2]["zone"] = "roof"
    found = problems(data)
    assert found["lanes[0].scanner.controller"] == "no [[uhppote]] controller with id 'nope'"
    assert found["lanes[1].scanner.bus"] == "no [[osdp]] bus with id 'nope'"
    assert found["lanes[2].zone"] == "unknown zone 'roof' (site.zones: 'main')"


def test_a_device_end_is_owned_by_one_lane() -> None:
    """Two lanes pulsing the same coil of the same board is a config error."""
    data = with_lanes(2)
    data["lanes"][1]["gate"] = dict(data["lanes"][0]["gate"])
    assert problems(data) == {"lanes[1].gate": "this device is already used by lanes[0].gate"}


def test_desk_directions_need_a_hotel() -> None:
    """checkin/checkout lanes only make sense at a hotel."""
    data = minimal()
    data["lanes"][0]["direction"] = "checkin"
    assert problems(data) == {"lanes[0].direction": "checkin lanes need site.kind = 'hotel'"}
    data["site"]["kind"] = "hotel"
    assert parse_config(data).lanes[0].direction is Direction.CHECKIN


def test_scanner_indicator_needs_a_scanner_that_can_show() -> None:
    """indicator kind 'scanner' on a plain TCP scanner cannot show anything."""
    data = minimal()
    data["lanes"][0]["indicator"] = {"kind": "scanner"}
    assert problems(data) == {
        "lanes[0].indicator.kind": "'scanner' needs an OSDP scanner or a serial scanner with a "
        "vendor"
    }


def test_driver_rules_are_checked_at_load() -> None:
    """Framing, Modbus endpoints and capacity limits are validated with the key path."""
    data = minimal()
    data["lanes"][0]["scanner"] = {
        "kind": "serial",
        "url": "socket://127.0.0.1:7000",
        "framing": {"suffix": "none"},
    }
    data["lanes"][0]["gate"]["url"] = "udp://127.0.0.1:1"
    data["site"]["rules"] = {"capacity_hard": 10, "capacity_soft": 20}
    found = problems(data)
    assert "idle_flush_s" in found["lanes[0].scanner.framing"]
    assert "tcp://HOST:PORT" in found["lanes[0].gate.url"]
    assert found["site.rules.capacity_soft"] == "must not exceed capacity_hard (10)"
    data = minimal()
    data["lanes"][0]["scanner"] = {"kind": "serial", "url": "/dev/ttyS0", "stopbits": 3}
    assert problems(data) == {"lanes[0].scanner.stopbits": "must be 1, 1.5 or 2, got 3.0"}


def test_secrets_are_never_inline() -> None:
    """There is no inline pepper setting; one of file or env is required, not both."""
    data = minimal()
    data["privacy"]["pepper"] = "hunter2hunter2hunter2"
    assert "privacy.pepper" in problems(data)
    data = minimal()
    data["privacy"]["pepper_file"] = "secrets/pepper"
    assert problems(data) == {"privacy.pepper_env": "set only one of pepper_file, pepper_env"}
    data = minimal()
    del data["privacy"]["pepper_env"]
    assert problems(data) == {"privacy.pepper_file": "missing required setting (or set pepper_env)"}


def test_read_pepper_from_env_or_file(tmp_path: Path) -> None:
    """The pepper is read from the named env var or file, and its absence names the key."""
    config = parse_config(minimal())
    assert config.privacy.read_pepper({"SUISHEN_PEPPER": "x" * 32}) == b"x" * 32
    with pytest.raises(ConfigError) as info:
        config.privacy.read_pepper({})
    assert info.value.paths == ("privacy.pepper_env",)
    (tmp_path / "pepper").write_bytes(b"y" * 20 + b"\n")
    data = minimal()
    data["privacy"] = {"pepper_file": "pepper", "hub_seal_key_file": "seal.pub"}
    config = parse_config(data, base_dir=tmp_path)
    assert config.privacy.read_pepper() == b"y" * 20


def test_inline_public_keys_are_checked_and_read(tmp_path: Path) -> None:
    """Pinned public keys may be inline (they are not secret) and must be the right kind."""
    bundle = ed25519.Ed25519PrivateKey.generate().public_key()
    seal = x25519.X25519PrivateKey.generate().public_key()
    spki = bundle.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    raw_seal = seal.public_bytes(Encoding.Raw, PublicFormat.Raw)
    data = minimal()
    data["lists"] = {"bundle_key": base64.b64encode(spki).decode()}
    data["privacy"] = {"pepper_env": "P", "hub_seal_key": base64.b64encode(raw_seal).decode()}
    config = parse_config(data)
    assert config.lists.read_bundle_key().public_bytes_raw() == bundle.public_bytes_raw()
    assert config.privacy.read_hub_seal_key().public_bytes_raw() == raw_seal

    data["lists"] = {"bundle_key": "not base64!"}
    data["privacy"]["hub_seal_key"] = base64.b64encode(spki).decode()
    assert problems(data) == {
        "lists.bundle_key": "must be base64",
        "privacy.hub_seal_key": "must be an X25519 public key",
    }

    pem = bundle.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "bundle.pub").write_bytes(pem)
    data = minimal()
    config = parse_config({**data, "lists": {"bundle_key_file": "bundle.pub"}}, base_dir=tmp_path)
    assert config.lists.read_bundle_key().public_bytes_raw() == bundle.public_bytes_raw()
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=tmp_path).lists.read_bundle_key()
    assert info.value.paths == ("lists.bundle_key_file",)


def test_times_zones_and_urls() -> None:
    """daily_reset takes a TOML time or "HH:MM"; time zones and hub URLs are checked."""
    data = minimal()
    data["site"]["daily_reset"] = "04:30"
    assert parse_config(data).site.daily_reset == dt.time(4, 30)
    data["site"]["daily_reset"] = dt.time(3, 0)
    assert parse_config(data).site.daily_reset == dt.time(3, 0)
    data["site"]["daily_reset"] = "half past four"
    data["hub"] = {"url": "http://hub", "client_cert": "a", "client_key": "b", "ca": "c"}
    found = problems(data)
    assert found["site.daily_reset"].startswith("must be a time of day like 04:00")
    assert found["hub.url"] == "must be an https:// URL, got 'http://hub'"
    data = minimal()
    data["site"]["timezone"] = "Mars/Olympus"
    assert problems(data) == {"site.timezone": "unknown time zone 'Mars/Olympus'"}


def test_embedded_module_configs_are_loaded_and_checked() -> None:
    """[site.rules] and [journal] are policy's and the journal's own dataclasses, loaded and
    checked by the same loader."""
    data = minimal()
    data["site"]["rules"] = {"replay": "sometimes", "capacity_hard": 0}
    assert problems(data) == {
        "site.rules.replay": "must be one of 'off', 'flag', 'deny', got a string ('sometimes')",
        "site.rules.capacity_hard": "must be >= 1, got 0",
    }
    data = minimal()
    data["journal"] = {"path": "j.sqlite3", "max_batch": 0}
    assert problems(data) == {"journal.max_batch": "must be >= 1, got 0"}
    data["journal"] = {"synchronous": "OFF"}
    assert "journal.synchronous" in problems(data)


def test_every_problem_is_reported_at_once() -> None:
    """One run shows everything wrong in a file, not just the first thing."""
    data = copy.deepcopy(with_lanes(2))
    data["lanes"][0]["open_pulse_ms"] = 0
    data["lanes"][1]["scanner"]["port"] = 70000
    data["http"] = {"port": "80"}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert set(info.value.paths) == {
        "lanes[0].open_pulse_ms",
        "lanes[1].scanner.port",
        "http.port",
    }
    assert str(info.value).splitlines()[0] == "lanes[0].open_pulse_ms: must be 1..60000, got 0"


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    """A missing file or broken TOML is a ConfigError too."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway\nid = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_the_tree_is_frozen() -> None:
    """The loaded config cannot be changed after start."""
    config = parse_config(minimal())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lanes[0].id = "other"  # type: ignore[misc]


# --------------------------------------------------------------------------- time profiles


def test_time_profiles_load_and_lanes_name_them() -> None:
    """A profile, a lane carrying it and a roster group's profile load as given."""
    data = minimal()
    data["time_profiles"] = {"garage": {"mon": ["06:00-23:00"], "holiday": ["08:00-20:00"]}}
    data["hours"] = {"groups": {"sub-a": "garage"}}
    data["lanes"][0]["time_profile"] = "garage"
    config = parse_config(data)
    assert config.lanes[0].time_profile == "garage"
    assert config.time_profiles["garage"].mon == ("06:00-23:00",)
    assert config.hours.groups == {"sub-a": "garage"}


@pytest.mark.parametrize(
    ("edit", "path", "message"),
    [
        (
            lambda d: d.update(time_profiles={"p": {"mon": ["06:00-20:00", "19:00-21:00"]}}),
            "time_profiles.p.mon",
            "windows overlap",
        ),
        (
            lambda d: d.update(time_profiles={"p": {"tue": ["20:00-06:00"]}}),
            "time_profiles.p.tue[0]",
            "ends before it starts",
        ),
        (
            lambda d: d["lanes"][0].update(time_profile="nope"),
            "lanes[0].time_profile",
            "no [time_profiles.nope]",
        ),
        (
            lambda d: d.update(hours={"groups": {"sub-a": "nope"}}),
            "hours.groups.sub-a",
            "no [time_profiles.nope]",
        ),
        (
            lambda d: d.update(time_profiles={"p": {"workday": "someday"}}),
            "time_profiles.p.workday",
            "must be one of",
        ),
    ],
)
def test_bad_time_profiles_name_the_key(edit: Any, path: str, message: str) -> None:
    """Overlapping or malformed profiles and dangling references: refused whole, naming the
    key path."""
    data = minimal()
    edit(data)
    found = problems(data)
    assert path in found, found
    assert message in found[path]


def test_a_holiday_file_with_a_bad_date_names_the_setting(tmp_path: Path) -> None:
    """The calendar file is read when the lanes are built (and by check-config): a bad date is
    a ConfigError naming hours.calendar_file and the entry."""
    calendar = tmp_path / "calendar.json"
    calendar.write_text(
        '{"version": 2, "region": "CN", "holidays": ["2026-13-01"], "workdays": []}'
    )
    data = minimal()
    data["hours"] = {"calendar_file": str(calendar)}
    config = parse_config(data)
    with pytest.raises(ConfigError) as info:
        config.hours.read_calendar()
    [problem] = info.value.problems
    assert problem.path == "hours.calendar_file"
    assert "calendar.holidays[0]" in problem.message
