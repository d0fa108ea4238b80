"""The lane display's feed (gateway/display.py): what an event may carry, and fan-out that
never waits for a tablet."""

from __future__ import annotations

import asyncio

from suishen.gateway.display import REASON_ZH, DisplayHub, event_from_record
from suishen.gateway.records import Decision, Direction, Person, ScanDecided, ScanFormat, Verdict
from suishen.protocol.reasons import Reason


def record(lane_id: str = "in-1", *, reason: Reason | None = None) -> ScanDecided:
    verdict = Verdict.ALLOW if reason is None else Verdict.DENY
    return ScanDecided(
        ts=1.0,
        site_id="s",
        lane_id=lane_id,
        direction=Direction.IN,
        format=ScanFormat.SSC1,
        decision=Decision(verdict=verdict, reason=reason),
        person=Person(
            person_key="ab" * 32,
            nationality="CHN",
            minor=False,
            status="G",
            masked_name="张*明",
            masked_number="310***********1234",
        ),
        identity_clear={"nm": "张小明", "idn": "310101198001011234"},
    )


def test_every_reason_has_chinese_text() -> None:
    """Each reason code a lane can journal is shown and spoken in Chinese, not as a code."""
    missing = [reason for reason in Reason if reason.value not in REASON_ZH]
    assert missing == []


def test_event_carries_only_what_the_door_may_see() -> None:
    """The event has the masked name and the verdict; no number (not even masked), no person
    key, nothing of the clear identity."""
    event = event_from_record(record(reason=Reason.EXPIRED), seq=7)
    text = repr(event.as_json())
    assert event.masked_name == "张*明"
    assert event.reason_zh == "码已过期，请刷新"
    for secret in ("张小明", "310101198001011234", "1234", "ab" * 32, "310***"):
        assert secret not in text


async def test_publish_never_waits_and_close_ends_streams() -> None:
    """Publishing to a full subscriber drops its oldest event at once; close() ends a reader."""
    hub = DisplayHub(frozenset({"in-1"}), queue_size=3)
    slow = hub.subscribe("in-1")
    for seq in range(1000):
        hub.publish(record(), seq)
    assert slow.queue.qsize() == 3 and slow.dropped == 997 and hub.dropped == 997
    reader = hub.subscribe("in-1")
    got: list[int] = []

    async def read() -> None:
        got.extend([event.seq async for event in reader.events()])

    task = asyncio.create_task(read())
    hub.publish(record(), 1000)
    hub.publish(record("other-lane"), 1001)  # not a lane of this gateway: ignored
    await asyncio.sleep(0)
    hub.close()
    async with asyncio.timeout(1):
        await task
    assert got == [1000]
    assert hub.subscribers("in-1") == 0
