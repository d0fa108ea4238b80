"""The lane display on a real gateway: pty scanners, Modbus turnstile simulators, the display
listener on loopback, read with an aiohttp client as a tablet's EventSource would."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from suishen.gateway import display_http
from suishen.gateway.config import ConfigError, load_config
from suishen.protocol.person import mask_name
from tests.integration.gateway_fixtures import RunningGateway, cnid, ric, running_gateway

DISPLAY_TOML = "[display]\nenabled = true\nport = 0\nclear_after_s = 3\n"
FULL_NAME = "王小明"  # the name ric() puts in every code
IDN = cnid(dt.date(1985, 5, 5), "271")


def display_url(gw: RunningGateway, path: str) -> str:
    assert gw.service.display_port is not None
    return f"http://127.0.0.1:{gw.service.display_port}{path}"


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) of each server-sent event, as an EventSource parses them."""
    name, data = "message", []
    async for raw in response.content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))


async def next_verdict(events: AsyncIterator[tuple[str, str]]) -> tuple[dict[str, Any], str]:
    async with asyncio.timeout(5):
        async for name, data in events:
            if name == "verdict":
                return json.loads(data), data
    raise AssertionError("the stream ended")


async def subscribed(gw: RunningGateway, lane_id: str, count: int = 1) -> None:
    """Wait until the hub holds `count` subscriptions for the lane (the stream is open)."""
    assert gw.service.display is not None
    async with asyncio.timeout(5):
        while True:
            if gw.service.display.subscribers(lane_id) >= count:
                return
            await asyncio.sleep(0.01)


async def test_scan_reaches_the_lane_display_masked(tmp_path: Path) -> None:
    """A scan at the pty scanner reaches the lane's event stream: the verdict, the reason in
    Chinese and the masked name; never the full name, the document number or the person key.
    Another lane's stream gets nothing."""
    async with (
        running_gateway(tmp_path, extra_toml=DISPLAY_TOML) as gw,
        gw.http.get(display_url(gw, "/display/in-1/events")) as stream,
        gw.http.get(display_url(gw, "/display/out-1/events")) as other,
    ):
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert "default-src 'none'" in stream.headers["Content-Security-Policy"]
        await subscribed(gw, "in-1")
        await subscribed(gw, "out-1")
        events = sse_events(stream)

        green = await gw.scan("in-1", gw.code(ric(IDN)))
        assert green.verdict == "allow"
        event, text = await next_verdict(events)
        assert event["verdict"] == "allow"
        assert event["verdict_zh"] == "请通行"
        assert event["masked_name"] == mask_name(FULL_NAME) != FULL_NAME
        assert event["seq"] == green.row.seq
        assert event["lane_id"] == "in-1"

        red = await gw.scan("in-1", gw.code(ric(IDN, status="R")))
        assert red.verdict == "deny"
        event, text2 = await next_verdict(events)
        assert event["verdict"] == "deny"
        assert event["reason"] == "status_red"
        assert event["reason_zh"] == "红码"
        assert event["spoken"] == "禁止通行，红码"

        for payload in (text, text2):
            assert FULL_NAME not in payload
            assert IDN not in payload and IDN[-4:] not in payload
            assert gw.key("RIC", IDN) not in payload
        with pytest.raises(TimeoutError):  # the other lane's tablet was sent nothing
            await asyncio.wait_for(other.content.readany(), 0.3)


async def test_display_page_is_static_and_strict(tmp_path: Path) -> None:
    """The page names its lane, loads only same-origin static JS and CSS (no inline script or
    style, a strict CSP); the JS speaks zh-CN through speechSynthesis; an unknown lane is 404."""
    async with running_gateway(tmp_path, extra_toml=DISPLAY_TOML) as gw:
        async with gw.http.get(display_url(gw, "/display/in-1")) as page:
            assert page.status == 200
            csp = page.headers["Content-Security-Policy"]
            html = await page.text()
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert 'data-lane="in-1"' in html
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
        assert scripts and all('src="/static/display/' in a and not body for a, body in scripts)
        assert "<style" not in html and " style=" not in html
        assert "http://" not in html and "https://" not in html
        async with gw.http.get(display_url(gw, "/static/display/display.js")) as js:
            assert js.status == 200
            assert js.content_type == "application/javascript"
            script = await js.text()
        assert "SpeechSynthesisUtterance" in script and '"zh-CN"' in script
        for path in ("/display/nope", "/display/nope/events", "/static/display/../http.py"):
            async with gw.http.get(display_url(gw, path)) as missing:
                assert missing.status == 404, path
                assert "Content-Security-Policy" in missing.headers


async def test_display_is_off_by_default(tmp_path: Path) -> None:
    """Without a [display] section there is no display listener and no feed."""
    async with running_gateway(tmp_path) as gw:
        assert gw.service.display is None
        assert gw.service.display_port is None
        assert (await gw.scan("in-1", gw.code(ric(IDN)))).verdict == "allow"


def test_gateway_runs_without_aiohttp_sse_when_display_is_off() -> None:
    """The gateway daemon imports without the 'web' extra: aiohttp-sse is imported only by the
    display listener, which starts only when enabled."""
    code = (
        "import sys; sys.modules['aiohttp_sse'] = None\n"
        "import suishen.gateway.service, suishen.cli\n"
        "assert 'suishen.gateway.display_http' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


async def test_stalled_tablet_never_slows_the_lane(tmp_path: Path) -> None:
    """A tablet that connects and stops reading loses old events (its bounded queue drops the
    oldest) while the lane keeps deciding at full speed; a reading tablet sees every scan."""
    toml = DISPLAY_TOML + "queue_events = 2\n"
    async with running_gateway(tmp_path, extra_toml=toml) as gw:
        hub = gw.service.display
        assert hub is not None
        stalled = hub.subscribe("in-1")  # a subscriber whose handler never drains its queue
        async with gw.http.get(display_url(gw, "/display/in-1/events")) as stream:
            await subscribed(gw, "in-1", count=2)
            events = sse_events(stream)
            seqs = []
            for n in range(6):
                result = await gw.scan("in-1", gw.code(ric(cnid(dt.date(1980, 1, 1 + n), "301"))))
                event, _ = await next_verdict(events)
                assert event["seq"] == result.row.seq
                seqs.append(event["seq"])
        assert stalled.queue.qsize() == 2
        assert stalled.dropped == 4
        assert [e.seq for e in (stalled.queue.get_nowait(), stalled.queue.get_nowait()) if e] == (
            seqs[-2:]
        )
        assert "suishen_display_events_dropped_total 4" in await gw.metrics()


async def test_open_streams_do_not_delay_stop(tmp_path: Path) -> None:
    """Stopping the gateway ends every open event stream at once, so it stops promptly."""
    async with running_gateway(tmp_path, extra_toml=DISPLAY_TOML) as gw:
        stream = await gw.http.get(display_url(gw, "/display/in-1/events"))
        await subscribed(gw, "in-1")
        started = time.monotonic()
        gw.service.stop()
        async with asyncio.timeout(3):
            await stream.content.read()  # the server ends the stream: EOF
        stream.release()
    assert time.monotonic() - started < 3


def test_display_port_must_differ_from_the_status_port(tmp_path: Path) -> None:
    """The display listener cannot share the status listener's port (a config error)."""
    text = (Path(__file__).parents[2] / "deploy/config/office-building.toml").read_text("utf-8")
    port = re.search(r"(?m)^port = (\d+)", text.split("[http]", 1)[1])
    http_port = int(port.group(1)) if port else 9180
    bad = tmp_path / "gateway.toml"
    bad.write_text(text + f"\n[display]\nenabled = true\nport = {http_port}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(bad, base_dir=Path(__file__).parents[2] / "deploy/config")
    assert any(p.path == "display.port" for p in caught.value.problems)


async def test_a_tablet_that_leaves_is_forgotten_on_a_quiet_lane(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tablet that disconnects is unsubscribed when the stream's next ping fails, without
    waiting for a scan at its lane (reconnecting tablets do not pile up subscriptions)."""
    monkeypatch.setattr(display_http, "PING_S", 0.05)
    async with running_gateway(tmp_path, extra_toml=DISPLAY_TOML) as gw:
        hub = gw.service.display
        assert hub is not None
        for _ in range(3):  # a tablet that reconnects three times
            async with aiohttp.ClientSession() as tablet:
                stream = await tablet.get(display_url(gw, "/display/in-1/events"))
                await subscribed(gw, "in-1")
                stream.close()
        async with asyncio.timeout(5):
            while True:
                if hub.subscribers("in-1") == 0:
                    break
                await asyncio.sleep(0.02)
        assert hub.published == 0  # no scan was needed to notice
