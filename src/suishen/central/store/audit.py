"""The audit trail: who changed or opened what, when and why (DESIGN §4, §7).

Every list change and (with the analysts' issue) every reveal of a sealed identity writes one
row, in the caller's transaction, so an audited action and its audit row commit together.
"""

from __future__ import annotations

import json
from typing import Any

from suishen.central.connection import Connection


async def record(
    con: Connection,
    actor: str,
    action: str,
    *,
    person_key: str | None = None,
    **target: Any,
) -> None:
    """One audit row; ``target`` holds the action's details (a "reason" is also its own column)."""
    await con.execute(
        "INSERT INTO audit (actor, action, person_key, target, reason) VALUES ($1, $2, $3, $4, $5)",
        actor,
        action,
        person_key,
        json.dumps(target, default=str),
        str(target.get("reason", "")),
    )
