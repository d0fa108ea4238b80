"""`suishen gateway emergency on|off|status` and `suishen gateway muster` against a running
gateway's local HTTP (found from its config's [http]), and the demo's fire drill."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest

from suishen.cli import main
from suishen.demo.emergency_drill import fire_drill
from tests.integration.gateway_fixtures import cnid, ric, running_gateway
from tests.integration.test_emergency import LANES, emergency_toml


async def test_the_cli_declares_shows_and_ends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`emergency on` declares (source local, the actor and note given), `status` shows it,
    `muster --json` and the table list the masked name by zone, `off` ends it; a gateway that
    does not answer is exit code 1, a bad config 2."""
    person = ric(cnid(dt.date(1985, 5, 5)), name="王小明")
    async with running_gateway(tmp_path, lanes=LANES, extra_toml=emergency_toml(None)) as gw:
        assert (await gw.scan("in-1", gw.code(person))).verdict == "allow"
        url = gw.url("")

        async def cli(*argv: str) -> tuple[int, str]:
            capsys.readouterr()
            code = await asyncio.to_thread(main, ["gateway", *argv])
            return code, capsys.readouterr().out

        code, text = await cli("emergency", "on", "--note", "drill", "--actor", "g7", "--url", url)
        assert code == 0 and "changed" in text and "EMERGENCY" in text
        assert (gw.service.emergency.state.actor, gw.service.emergency.state.note) == (
            "g7",
            "drill",
        )
        code, text = await cli("emergency", "status", "--url", url)
        assert code == 0 and "source   local" in text
        code, text = await cli("muster", "--json", "--url", url)
        assert code == 0
        assert json.loads(text)["zones"]["lobby"] == ["王*明"]
        code, text = await cli("muster", "--url", url)
        assert code == 0 and "zone lobby (1)" in text and "王*明" in text and "小" not in text
        code, text = await cli("emergency", "off", "--url", url)
        assert code == 0 and "state    normal" in text
        assert not gw.service.emergency.active
    code, _ = await cli_unbound(capsys, "emergency", "status", "--url", "http://127.0.0.1:1")
    assert code == 1
    code, _ = await cli_unbound(capsys, "muster", "--config", str(tmp_path / "missing.toml"))
    assert code == 2


async def cli_unbound(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, ["gateway", *argv])
    return code, capsys.readouterr().err


async def test_the_demo_fire_drill(tmp_path: Path) -> None:
    """The demo's drill: exits held within 1 s of the alarm, the muster list counts everyone
    who entered (masked), the cleared input leaves the emergency on, the command ends it."""
    lines: list[str] = []
    summary = await fire_drill(tmp_path / "drill", people=4, out=lines.append)
    assert summary["exits_held_after_s"] < 1.0
    assert summary["muster"]["count"] == 4
    assert summary["still_active_after_clear"] is True
    assert summary["active_at_end"] is False
    assert any(line.startswith("muster list at") for line in lines)
    assert not any("访客1" in line for line in lines)
