"""Demo stage 6: a tracing case at the demo's building, one trace and one audited reveal.

After the hub stage, on the same embedded PostgreSQL (the hub's state directory): an index
person and the people around them pass the building's gates (scans with their identities sealed
to the hub's key, as a gateway seals them; visits derived by the hub's own derivation).  An
analyst then traces the index person (the same ``trace`` function the API and
``suishen analyst trace`` call): contacts ranked by overlap, masked.  The analyst reveals the
closest contact's identity with a reason and a case reference, and the tour prints the audit
row that reveal wrote.  ``main`` runs it as ``python -m suishen.demo.tracing_tour STATE_DIR``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import secrets
import subprocess
import sys
import zoneinfo
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from suishen.central import derive
from suishen.central.db import DatabaseSettings, open_database
from suishen.central.keys import load_seal_key
from suishen.central.queries.trace import TraceParams, TraceResult, trace
from suishen.central.reveal import RevealResult, reveal
from suishen.central.scope import Scope
from suishen.central.store.audit import AuditParams, AuditRow, trail
from suishen.protocol.person import mask_name, mask_number, person_key
from suishen.protocol.sealing import EpochSealer, HubOpener, encode_identity

SITE_ID = "site-building"
GATEWAY_ID = "gw-building-trace"
CASE_REF = "CASE-DEMO-001"
REASON = "index case confirmed positive; contacting people who shared the lobby"

# (name, number, minutes after the start the person went in, minutes they stayed)
INDEX = ("刘伟", "310101198805051234", 0, 120)
PEOPLE = (
    ("陈静", "310104199201013321", 30, 150),  # 90 minutes together
    ("Maria GARCIA", "PA1234567", 80, 60),  # 40 minutes
    ("赵磊", "320102197712124418", 100, 45),  # 20 minutes
    ("孙丽", "330106200001017725", 115, 30),  # 5 minutes: below the 15-minute margin
)


SITE_ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TourResult:
    index_key: str
    trace: TraceResult
    revealed: RevealResult
    audit: AuditRow


def _identity(name: str, number: str) -> dict[str, str]:
    if number[0].isalpha():
        return {"idt": "PP", "idn": number, "nm": name, "dob": "1985-06-01", "nat": "ESP"}
    return {"idt": "RIC", "idn": number, "nm": name, "dob": number[6:10] + "-01-01", "nat": "CHN"}


def case_start(now: dt.datetime) -> dt.datetime:
    """When the case's morning begins: 09:00 at the site (Asia/Shanghai, the sites table's
    default zone) today, or yesterday when today's four hours are not over yet. The whole case
    then lies within one site day: the daily reset (03:00 local) never cuts a visit short,
    whatever the hour the demo runs (the case used to start four hours ago, and the visits
    were cut when that window held the reset)."""
    local_now = now.astimezone(SITE_ZONE)
    start = local_now.replace(hour=9, minute=0, second=0, microsecond=0)
    if start + dt.timedelta(hours=4) > local_now:
        start -= dt.timedelta(days=1)
    return start.astimezone(dt.UTC)


async def run_tour(hub_state: Path) -> TourResult:
    """Build the case, trace, reveal on the hub's database (see the module docstring)."""
    async with open_database(DatabaseSettings(state_dir=hub_state)) as pool:
        return await tour(pool, load_seal_key(hub_state))


async def tour(pool: asyncpg.Pool, hub_key: X25519PrivateKey) -> TourResult:
    """The tour on ``pool`` with the hub's sealing key."""
    sealer = EpochSealer(hub_key.public_key())
    pepper = secrets.token_bytes(32)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = case_start(now)
    async with pool.acquire() as con, con.transaction():
        await con.execute(
            "INSERT INTO sites (site_id, kind, name) VALUES ($1, 'building', 'Demo tower') "
            "ON CONFLICT DO NOTHING",
            SITE_ID,
        )
        keys = {}
        events = []
        seq = 0
        for name, number, at_min, stay_min in (INDEX, *PEOPLE):
            identity = _identity(name, number)
            key = person_key(pepper, identity["idt"], number, identity.get("nat"))
            keys[name] = key
            for direction, ts in (
                ("in", start + dt.timedelta(minutes=at_min)),
                ("out", start + dt.timedelta(minutes=at_min + stay_min)),
            ):
                seq += 1
                sealed = sealer.seal(
                    encode_identity(identity), gateway_id=GATEWAY_ID, seq=seq, now=0.0
                )
                epoch = sealer.current
                assert epoch is not None
                await con.execute(
                    "INSERT INTO epochs (gateway_id, epoch_id, ephemeral_public) "
                    "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    GATEWAY_ID,
                    epoch.epoch_id.hex(),
                    epoch.ephemeral_public,
                )
                await con.execute(
                    """
                    INSERT INTO scans (gateway_id, seq, ts, site_id, lane_id, direction,
                        format, verdict, person_key, nationality, masked_name, masked_number,
                        identity_sealed, epoch_id)
                    VALUES ($1, $2, $3, $4, $5, $6, 'CNID', 'allow', $7, $8, $9, $10, $11,
                            $12)
                    """,
                    GATEWAY_ID, seq, ts, SITE_ID, f"lane-{direction}", direction, key,
                    identity["nat"], mask_name(name), mask_number(number), sealed,
                    epoch.epoch_id.hex(),
                )  # fmt: skip
                events.append((key, direction, ts))
        await derive.derive_scans(con, SITE_ID, events, now=now)
        user_id = await con.fetchval(
            "INSERT INTO users (username, display_name, role) "
            "VALUES ('tracer', 'Tracing team', 'analyst') "
            "ON CONFLICT (username) DO UPDATE SET role = 'analyst' RETURNING user_id"
        )
    analyst = _Analyst(user_id=user_id, username="tracer", role="analyst")
    async with pool.acquire() as con:
        result = await trace(
            con, Scope.everywhere(), TraceParams(person_key=keys[INDEX[0]], until=now)
        )
        closest = result.contacts[0].person_key
        revealed = await reveal(con, analyst, closest, REASON, CASE_REF, opener=HubOpener(hub_key))
        (row,) = await trail(con, AuditParams(action="reveal", case_ref=CASE_REF, limit=1))
    return TourResult(index_key=keys[INDEX[0]], trace=result, revealed=revealed, audit=row)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Analyst:
    user_id: int
    username: str
    role: str


def print_tour(result: TourResult) -> None:
    trace_result = result.trace
    print(
        f"index person {result.index_key[:12]}...: {len(trace_result.visits)} visit(s), "
        f"{len(trace_result.contacts)} contact(s) overlapping >= "
        f"{trace_result.margin_minutes:.0f} min"
    )
    print(f"  {'person key':<16}  {'overlap':>8}  {'masked name':<14}  masked number")
    for contact in trace_result.contacts:
        print(
            f"  {contact.person_key[:12]}...  {contact.overlap_minutes:6.0f} m  "
            f"{contact.masked_name or '':<14}  {contact.masked_number or ''}"
        )
    (identity,) = result.revealed.identities
    print(
        f"\nreveal of the closest contact by analyst 'tracer' (reason and case required): "
        f"{identity.name}, {identity.idt} {identity.idn}, born {identity.dob}"
    )
    row = result.audit
    print(
        f"audit row {row.audit_id}: {row.ts:%Y-%m-%d %H:%M:%S} actor={row.actor} "
        f"action={row.action} case={row.case_ref} records={len(row.target['records'])}\n"
        f"  reason: {row.reason}"
    )


def main(hub_root: Path) -> None:
    """Stage 6 on the hub stage's state (``hub_root``/hub-state), in a process of its own: the
    embedded PostgreSQL is one handle per state directory per process, and this process let go
    of it at the end of stage 3."""
    print("\nStage 6: a tracing case at the building: one trace, one audited reveal\n", flush=True)
    subprocess.run(  # noqa: S603 - this module, a path we made
        [sys.executable, "-m", "suishen.demo.tracing_tour", str(hub_root / "hub-state")],
        check=True, timeout=300,
    )  # fmt: skip


if __name__ == "__main__":
    print_tour(asyncio.run(run_tour(Path(sys.argv[1]))))
