"""Shared helpers of the analyst tests: users, sealed scans, a hub sealing key, a pepper."""

from __future__ import annotations

import dataclasses
import datetime as dt

import asyncpg
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from suishen.protocol.person import mask_name, mask_number, person_key
from suishen.protocol.sealing import EpochSealer, encode_identity

PEPPER = b"analyst-test-pepper-0123456789"
SITE = "site-a"
OTHER_SITE = "site-b"
GATEWAY = "gw-a"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TestUser:
    """A hub user as the privacy functions see it (auth.User has the same fields)."""

    __test__ = False
    user_id: int | None
    username: str
    role: str


async def add_user(con: asyncpg.Connection | asyncpg.Pool, username: str, role: str) -> TestUser:
    """A users row (0001 schema) and its TestUser."""
    user_id = await con.fetchval(
        "INSERT INTO users (username, display_name, role) VALUES ($1, $1, $2) "
        "ON CONFLICT (username) DO UPDATE SET role = $2 RETURNING user_id",
        username,
        role,
    )
    return TestUser(user_id=user_id, username=username, role=role)


async def add_sites(con: asyncpg.Connection | asyncpg.Pool) -> None:
    await con.execute(
        "INSERT INTO sites (site_id, kind, name) VALUES ($1, 'building', 'Tower A'), "
        "($2, 'venue', 'Hall B') ON CONFLICT DO NOTHING",
        SITE,
        OTHER_SITE,
    )


class Sealer:
    """A gateway's sealing side for tests: seals identities to a hub key, stores epochs."""

    def __init__(self, hub_key: X25519PrivateKey, gateway_id: str = GATEWAY) -> None:
        self.gateway_id = gateway_id
        self._sealer = EpochSealer(hub_key.public_key())

    async def scan(
        self,
        con: asyncpg.Connection | asyncpg.Pool,
        seq: int,
        ts: dt.datetime,
        *,
        idn: str,
        name: str,
        site_id: str = SITE,
        direction: str = "in",
        sealed: bool = True,
    ) -> str:
        """Insert an allowed RIC scan of the person (sealed unless told); return its key."""
        key = person_key(PEPPER, "RIC", idn)
        blob = epoch_hex = None
        if sealed:
            identity = {"idt": "RIC", "idn": idn, "nm": name, "dob": "1990-01-01", "nat": "CHN"}
            blob = self._sealer.seal(
                encode_identity(identity), gateway_id=self.gateway_id, seq=seq, now=0.0
            )
            epoch = self._sealer.current
            assert epoch is not None
            epoch_hex = epoch.epoch_id.hex()
            await con.execute(
                "INSERT INTO epochs (gateway_id, epoch_id, ephemeral_public) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING",
                self.gateway_id,
                epoch_hex,
                epoch.ephemeral_public,
            )
        await con.execute(
            """
            INSERT INTO scans (gateway_id, seq, ts, site_id, lane_id, direction, format, verdict,
                               person_key, nationality, masked_name, masked_number,
                               identity_sealed, epoch_id)
            VALUES ($1, $2, $3, $4, 'lane-1', $5, 'CNID', 'allow', $6, 'CHN', $7, $8, $9, $10)
            """,
            self.gateway_id,
            seq,
            ts,
            site_id,
            direction,
            key,
            mask_name(name),
            mask_number(idn),
            blob,
            epoch_hex,
        )
        return key
