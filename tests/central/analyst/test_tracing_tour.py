"""The demo's tracing case (stage 5) on the test PostgreSQL: the contacts come out ranked as the
case was built (90, 40, 20 minutes; the 5-minute one below the margin is left out), the reveal
opens the closest contact and its audit row names the analyst, the reason and the case."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from suishen.demo import tracing_tour
from suishen.demo.hub_stage import run_hub_demo


async def test_the_tour_traces_and_reveals_with_an_audit_row(
    db_pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    """Known answer by construction; the printed tour shows the trace and the audit row."""
    result = await tracing_tour.tour(db_pool, X25519PrivateKey.generate())
    assert [round(c.overlap_minutes) for c in result.trace.contacts] == [90, 40, 20]
    masked = [c.masked_name for c in result.trace.contacts]
    assert masked == ["陈*", "M**** G*****", "赵*"]
    (identity,) = result.revealed.identities
    assert identity.opened and identity.name == "陈静"
    assert (result.audit.actor, result.audit.action, result.audit.case_ref) == (
        "tracer", "reveal", tracing_tour.CASE_REF,
    )  # fmt: skip
    tracing_tour.print_tour(result)
    out = capsys.readouterr().out
    assert "3 contact(s)" in out and f"case={tracing_tour.CASE_REF}" in out and "陈静" in out


async def test_stage_5_runs_on_the_hub_stages_database(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """After the real hub stage (a hub process on embedded PostgreSQL, stopped), stage 5 opens
    the same database from the hub's state directory and prints the trace and the audit row."""
    await run_hub_demo(tmp_path)
    capfd.readouterr()
    await asyncio.to_thread(tracing_tour.main, tmp_path)
    out = capfd.readouterr().out
    assert "3 contact(s)" in out and "陈静" in out
    assert f"action=reveal case={tracing_tour.CASE_REF}" in out


@pytest.mark.parametrize("hour", range(24))
def test_the_case_never_straddles_the_daily_reset(hour: int) -> None:
    """At every hour of the day the demo may run, the case's four hours lie inside one site day
    (after 03:00 local, before the next 03:00) and end before now (it failed between 19:00
    and 23:00 UTC, when the case's window held the 03:00 Shanghai reset)."""
    now = dt.datetime(2026, 12, 4, hour, 17, tzinfo=dt.UTC)
    start = tracing_tour.case_start(now)
    end = start + dt.timedelta(hours=4)
    assert end <= now
    local_start, local_end = (
        start.astimezone(tracing_tour.SITE_ZONE),
        end.astimezone(tracing_tour.SITE_ZONE),
    )
    assert local_start.date() == local_end.date() and local_start.hour >= 3
