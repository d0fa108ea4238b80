"""A whole simulated site: keys, a trust list, device simulators and a gateway config.

Used by the demo, the end-to-end tests and the gateway benchmark. Every lane gets a pty QR
scanner simulator (behind a stable symlink, so a cable pull keeps the path) and a Modbus
turnstile simulator on loopback TCP; the gateway config written to `root/gateway.toml` wires
them with the real drivers. Nothing here is a mock: the gateway talks the real wire protocols.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from suishen.demo.issuer import IssuerKey, build_trust_file, generate_issuer
from suishen.drivers.sim.scanner import PtyScannerSim
from suishen.drivers.sim.turnstile import TurnstileSimulator
from suishen.gateway.records import Direction, SiteKind
from suishen.protocol.codes import Identity

PEPPER_ENV = "SUISHEN_PEPPER"


@dataclass(frozen=True, slots=True, kw_only=True)
class LaneSpec:
    id: str
    direction: Direction = Direction.IN
    zone: str = "main"
    has_passage_sensor: bool = True
    passage_timeout_s: float = 2.0
    time_profile: str | None = None  # a [time_profiles.NAME] of the config's extra text


@dataclass(slots=True)
class SimLane:
    spec: LaneSpec
    scanner: PtyScannerSim
    turnstile: TurnstileSimulator | None


@dataclass(slots=True)
class SimSite:
    """Build with `await SimSite.create(...)`; close with `await site.aclose()`."""

    root: Path
    kind: SiteKind
    lanes: dict[str, SimLane]
    issuer: IssuerKey
    bundle_key: ed25519.Ed25519PrivateKey | None  # None when the hub's own keys are used
    seal_key: x25519.X25519PrivateKey | None
    pepper: bytes
    config_path: Path
    environ: dict[str, str] = field(default_factory=dict)
    site_id: str = ""  # default: site-<kind>
    gateway_id: str = ""  # default: gw-<kind>

    @classmethod
    async def create(
        cls,
        root: Path,
        *,
        kind: SiteKind = SiteKind.BUILDING,
        lanes: list[LaneSpec] | None = None,
        rules_toml: str = "",
        passage_delay_s: float = 0.05,
        pass_probability: float = 1.0,
        http_port: int = 0,
        extra_toml: str = "",
        hub_public_keys: tuple[bytes, bytes] | None = None,
        site_id: str = "",
        gateway_id: str = "",
    ) -> SimSite:
        """`hub_public_keys` (bundle key PEM, sealing key PEM) wires the site to a real hub's
        keys instead of fresh local ones; `site_id` and `gateway_id` default to site-<kind> and
        gw-<kind>."""
        bundle_key, seal_key = _make_keys(root / "keys", hub_public_keys)
        # The pepper is the secret's bytes exactly as the gateway reads them from the variable.
        pepper_text = secrets.token_hex(32)
        specs = lanes or [LaneSpec(id="in-1"), LaneSpec(id="out-1", direction=Direction.OUT)]
        sim_lanes: dict[str, SimLane] = {}
        for spec in specs:
            scanner = PtyScannerSim(link=root / f"{spec.id}.tty")
            scanner.plug()
            turnstile = None
            if spec.direction in (Direction.IN, Direction.OUT):
                turnstile = TurnstileSimulator(
                    delay_s=passage_delay_s, pass_probability=pass_probability
                )
                await turnstile.start()
            sim_lanes[spec.id] = SimLane(spec=spec, scanner=scanner, turnstile=turnstile)
        site = cls(
            root=root,
            kind=kind,
            lanes=sim_lanes,
            issuer=IssuerKey(root / "keys" / "issuer"),
            bundle_key=bundle_key,
            seal_key=seal_key,
            pepper=pepper_text.encode(),
            config_path=root / "gateway.toml",
            environ={PEPPER_ENV: pepper_text},
            site_id=site_id or f"site-{kind.value}",
            gateway_id=gateway_id or f"gw-{kind.value}",
        )
        site.write_config(rules_toml=rules_toml, http_port=http_port, extra=extra_toml)
        return site

    def write_config(self, *, rules_toml: str = "", http_port: int = 0, extra: str = "") -> None:
        text = self.config_text(rules_toml=rules_toml, http_port=http_port, extra=extra)
        self.config_path.write_text(text, encoding="utf-8")

    def config_text(self, *, rules_toml: str, http_port: int, extra: str) -> str:
        zones = sorted({lane.spec.zone for lane in self.lanes.values()})
        parts = [
            f'[gateway]\nid = "{self.gateway_id}"\n',
            (
                f'[site]\nid = "{self.site_id}"\nkind = "{self.kind.value}"\n'
                f"zones = {json.dumps(zones)}\n"
            ),
            f"[site.rules]\n{rules_toml}\n",
        ]
        for lane in self.lanes.values():
            spec = lane.spec
            scanner = (
                f'{{ kind = "serial", url = "{lane.scanner.path}", baudrate = 115200, '
                f'framing = {{ suffix = "cr" }} }}'
            )
            gate = (
                f'{{ kind = "modbus", url = "{lane.turnstile.url}", unit = 1, coil = 0, '
                f"passage_input = 0 }}"
                if lane.turnstile is not None
                else '{ kind = "none" }'
            )
            sensor = "true" if spec.has_passage_sensor and lane.turnstile is not None else "false"
            hours = "" if spec.time_profile is None else f'time_profile = "{spec.time_profile}"\n'
            parts.append(
                f'[[lanes]]\nid = "{spec.id}"\ndirection = "{spec.direction.value}"\n'
                f'zone = "{spec.zone}"\nhas_passage_sensor = {sensor}\n'
                f"passage_timeout_s = {spec.passage_timeout_s}\n"
                f"scanner = {scanner}\ngate = {gate}\n{hours}"
            )
        parts.append(
            '[lists]\ndirectory = "state/lists"\nbundle_key_file = "keys/hub-bundle.pub"\n'
            'trust_file = "keys/trust.json"\n'
        )
        parts.append(
            f'[privacy]\npepper_env = "{PEPPER_ENV}"\nhub_seal_key_file = "keys/hub-seal.pub"\n'
        )
        parts.append('[journal]\npath = "state/journal.sqlite3"\n')
        parts.append(f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n')
        parts.append('[logging]\nlevel = "warning"\n')
        parts.append(extra)
        return "\n".join(parts)

    def code(self, identity: Identity, *, iat: int, ttl_s: int = 120) -> str:
        return self.issuer.issue(identity, iat=iat, ttl_s=ttl_s)

    async def scan(self, lane_id: str, text: str) -> None:
        await self.lanes[lane_id].scanner.send_scan(text)

    def opens(self, lane_id: str) -> int:
        turnstile = self.lanes[lane_id].turnstile
        return 0 if turnstile is None else turnstile.opens_received

    async def aclose(self) -> None:
        for lane in self.lanes.values():
            await lane.scanner.aclose()
            if lane.turnstile is not None:
                await lane.turnstile.aclose()


def _make_keys(
    keys: Path, hub_public_keys: tuple[bytes, bytes] | None
) -> tuple[ed25519.Ed25519PrivateKey | None, x25519.X25519PrivateKey | None]:
    """An issuer and its trust file, and the hub's bundle and sealing keys (public halves)."""
    generate_issuer(keys / "issuer", alg="ES256", issuer="CN-SH")
    trust = build_trust_file([keys / "issuer"])
    (keys / "trust.json").write_text(json.dumps(trust), encoding="utf-8")
    if hub_public_keys is not None:
        (keys / "hub-bundle.pub").write_bytes(hub_public_keys[0])
        (keys / "hub-seal.pub").write_bytes(hub_public_keys[1])
        return None, None
    bundle_key = ed25519.Ed25519PrivateKey.generate()
    seal_key = x25519.X25519PrivateKey.generate()
    write_public_key(keys / "hub-bundle.pub", bundle_key.public_key())
    write_public_key(keys / "hub-seal.pub", seal_key.public_key())
    return bundle_key, seal_key


def write_public_key(path: Path, key: ed25519.Ed25519PublicKey | x25519.X25519PublicKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path.write_bytes(pem)
