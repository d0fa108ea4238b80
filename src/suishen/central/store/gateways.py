"""Sites and gateways at the hub: registration, the pinned client certificate, enabled (DESIGN §6).

The hub pins one certificate per gateway: ``gateways.cert_sha256``, the SHA-256 of its DER
(``sync.pki.certificate_sha256``).  Changes (each in the caller's transaction; history in
``gateway_certificates``):

- ``register_gateway``: the site (made if new, its kind checked if not) and the gateway;
- ``pin_certificate``: register a gateway's certificate (``suishen hub gateway add --cert`` /
  ``--pki``, ``suishen hub gateway reissue``); the one pinned before is retired as
  ``replaced`` and refused from then on.  A retired certificate cannot be pinned again.
- ``revoke_certificate``: retire the current one as ``revoked``; the gateway has no usable
  certificate until a new one is pinned (``suishen hub gateway revoke``).
- ``set_enabled``: a disabled gateway is refused on every request.

A trigger (deploy/sql/0004_gateway_certs.sql) notifies ``suishen_gateways`` at commit; the
gateway registry (central/gateway_registry.py) drops its cached entry at once.

Exceptions::

    GatewayChangeError (Conflict, ValueError)   a change that cannot be made (unknown gateway,
                                                a site of another kind, a retired or foreign
                                                certificate)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Final

import asyncpg

from suishen.central.connection import Connection
from suishen.central.errors import Conflict
from suishen.central.scope import Scope
from suishen.protocol.vocabulary import CertificateRetired


class GatewayChangeError(Conflict, ValueError):
    """A gateway change that cannot be made (409 at a front door)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GatewayAuth:
    """What the hub needs to admit a gateway's request."""

    gateway_id: str
    site_id: str
    enabled: bool
    cert_sha256: str | None


# --------------------------------------------------------------------------- changes


async def pin_certificate(
    con: Connection, gateway_id: str, cert_sha256: str, *, not_after: dt.datetime | None = None
) -> bool:
    """Make ``cert_sha256`` the gateway's only accepted certificate (call in a transaction).

    Returns False when it already was.  Raises GatewayChangeError for an unknown gateway, a
    certificate already retired, or one pinned for another gateway.
    """
    current = await con.fetchval(
        "SELECT cert_sha256 FROM gateways WHERE gateway_id = $1 FOR UPDATE", gateway_id
    )
    if current is None and not await con.fetchval(
        "SELECT true FROM gateways WHERE gateway_id = $1", gateway_id
    ):
        raise GatewayChangeError(f"gateway {gateway_id!r} is not registered")
    known = await con.fetchrow(
        "SELECT gateway_id, retired_why FROM gateway_certificates WHERE cert_sha256 = $1",
        cert_sha256,
    )
    if known is not None and known["gateway_id"] != gateway_id:
        raise GatewayChangeError("that certificate is registered for another gateway")
    if known is not None and known["retired_why"] is not None:
        raise GatewayChangeError(
            f"that certificate was {known['retired_why']}; issue a new one "
            "(suishen hub gateway reissue)"
        )
    if current == cert_sha256:
        if not_after is not None:
            await con.execute(
                "UPDATE gateway_certificates SET not_after = $2 WHERE cert_sha256 = $1",
                cert_sha256,
                not_after,
            )
        return False
    await con.execute(
        "UPDATE gateway_certificates SET retired_at = now(), retired_why = $2 "
        "WHERE gateway_id = $1 AND retired_at IS NULL",
        gateway_id,
        CertificateRetired.REPLACED.value,
    )
    await con.execute(
        "INSERT INTO gateway_certificates (cert_sha256, gateway_id, not_after) VALUES ($1, $2, $3)",
        cert_sha256,
        gateway_id,
        not_after,
    )
    await con.execute(
        "UPDATE gateways SET cert_sha256 = $2 WHERE gateway_id = $1", gateway_id, cert_sha256
    )
    return True


async def revoke_certificate(con: Connection, gateway_id: str) -> str | None:
    """Refuse the gateway's current certificate from now on; its fingerprint, or None when
    it had none.  Raises GatewayChangeError for an unknown gateway."""
    row = await con.fetchrow(
        "SELECT cert_sha256 FROM gateways WHERE gateway_id = $1 FOR UPDATE", gateway_id
    )
    if row is None:
        raise GatewayChangeError(f"gateway {gateway_id!r} is not registered")
    await con.execute(
        "UPDATE gateway_certificates SET retired_at = now(), retired_why = $2 "
        "WHERE gateway_id = $1 AND retired_at IS NULL",
        gateway_id,
        CertificateRetired.REVOKED.value,
    )
    await con.execute("UPDATE gateways SET cert_sha256 = NULL WHERE gateway_id = $1", gateway_id)
    revoked: str | None = row["cert_sha256"]
    return revoked


async def set_enabled(con: Connection, gateway_id: str, enabled: bool) -> None:
    """Enable or disable a gateway (disabled: 403 on every request)."""
    done = await con.fetchval(
        "UPDATE gateways SET enabled = $2 WHERE gateway_id = $1 RETURNING true",
        gateway_id,
        enabled,
    )
    if not done:
        raise GatewayChangeError(f"gateway {gateway_id!r} is not registered")


async def read_gateway(con: Connection | asyncpg.Pool, gateway_id: str) -> GatewayAuth | None:
    row = await con.fetchrow(
        "SELECT gateway_id, site_id, enabled, cert_sha256 FROM gateways WHERE gateway_id = $1",
        gateway_id,
    )
    if row is None:
        return None
    return GatewayAuth(
        gateway_id=row["gateway_id"],
        site_id=row["site_id"],
        enabled=row["enabled"],
        cert_sha256=row["cert_sha256"],
    )


async def register_gateway(
    con: Connection, gateway_id: str, *, site_id: str, kind: str, name: str
) -> None:
    """Register (or re-enable and move) ``gateway_id`` at ``site_id``; the site is made when
    new.  Raises GatewayChangeError when the site exists as another kind."""
    stored_kind = await con.fetchval(
        "INSERT INTO sites (site_id, kind, name) VALUES ($1, $2, $3) "
        "ON CONFLICT (site_id) DO UPDATE SET site_id = EXCLUDED.site_id RETURNING kind",
        site_id,
        kind,
        name,
    )
    if stored_kind != kind:
        raise GatewayChangeError(f"site {site_id!r} exists as a {stored_kind} site")
    await con.execute(
        "INSERT INTO gateways (gateway_id, site_id) VALUES ($1, $2) "
        "ON CONFLICT (gateway_id) DO UPDATE SET site_id = $2, enabled = true",
        gateway_id,
        site_id,
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GatewayListed:
    """One gateway as people see it: where it is, whether it may connect, how far it synced."""

    gateway_id: str
    site_id: str
    site_kind: str
    enabled: bool
    cert_pinned: bool
    high_water: int
    journals: int
    last_seen_at: dt.datetime | None


# Built once; the scope clause is constant text, its value is bound as $1.
_LIST_GATEWAYS_SQL: Final = f"""
        SELECT g.gateway_id, g.site_id, s.kind AS site_kind, g.enabled,
               g.cert_sha256 IS NOT NULL AS cert_pinned, g.high_water,
               (SELECT count(*) FROM gateway_journals j WHERE j.gateway_id = g.gateway_id)
                   AS journals,
               (SELECT max(j.last_seen_at) FROM gateway_journals j
                WHERE j.gateway_id = g.gateway_id) AS last_seen_at
        FROM gateways g JOIN sites s USING (site_id)
        WHERE {Scope.sql("$1", "g.site_id")}
        ORDER BY g.site_id, g.gateway_id
        """  # noqa: S608


async def list_gateways(con: Connection, scope: Scope) -> tuple[GatewayListed, ...]:
    """The gateways of the sites in ``scope``, by site and gateway id."""
    rows = await con.fetch(_LIST_GATEWAYS_SQL, scope.sql_param())
    return tuple(GatewayListed(**dict(row)) for row in rows)


async def record_backlog(con: Connection, gateway_id: str, backlog: int) -> None:
    """What the gateway said it still had to upload (X-Suishen-Backlog), and when."""
    await con.execute(
        "UPDATE gateways SET reported_backlog = $2, reported_backlog_at = now() "
        "WHERE gateway_id = $1",
        gateway_id,
        backlog,
    )
