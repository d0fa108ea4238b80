"""The lane display's feed: a decided scan -> a DisplayEvent -> every tablet watching that lane.

A tablet at a lane shows the last verdict (large, green or red), the masked name and the
reason in Chinese, and speaks the verdict (gateway/static/display/, served by display_http).
This module is the part the lanes touch, so it must never slow one down:

- ``DisplayHub.publish(record, seq)`` is synchronous and O(subscribers): it builds one event and
  puts it on each subscriber's own bounded queue with ``put_nowait``. A slow or stalled tablet
  whose queue is full loses its OLDEST event (a display wants the latest verdict, not a
  backlog); the drop is counted, the lane never waits.
- An event carries only what a person at the door may see: the verdict, the reason code and its
  Chinese text, the masked name (``Person.masked_name``, e.g. "张*明"). Never a full name, a
  document number (not even masked), a person key or the sealed identity.
- ``close()`` ends every stream (the gateway stops promptly; an SSE handler returns when its
  queue yields the end marker).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from suishen.gateway.records import ScanDecided, Verdict
from suishen.protocol.reasons import Reason

# Spoken and shown reasons (zh-CN), short enough to read at a glance from a turnstile.
REASON_ZH: dict[str, str] = {
    Reason.MALFORMED_PREFIX: "无法识别的码",
    Reason.MALFORMED_BASE45: "码内容损坏",
    Reason.MALFORMED_ZLIB: "码内容损坏",
    Reason.OVERSIZE: "码内容过长",
    Reason.MALFORMED_COSE: "码内容损坏",
    Reason.UNSUPPORTED_ALG: "不支持的签名算法",
    Reason.UNKNOWN_KID: "签发密钥未知",
    Reason.KEY_NOT_VALID: "签发密钥已失效",
    Reason.ISSUER_NOT_TRUSTED: "签发机构不受信任",
    Reason.BAD_SIGNATURE: "签名无效",
    Reason.NOT_YET_VALID: "码尚未生效",
    Reason.EXPIRED: "码已过期，请刷新",
    Reason.VALIDITY_TOO_LONG: "码有效期过长",
    Reason.MALFORMED_CLAIMS: "码内容不完整",
    Reason.REPLAY: "此码已使用",
    Reason.STATUS_RED: "红码",
    Reason.STATUS_YELLOW: "黄码",
    Reason.WATCHLIST: "请到值班室登记",
    Reason.NOT_REGISTERED: "未登记人员",
    Reason.CAPACITY_FULL: "场所已满",
    Reason.ANTI_PASSBACK: "重复进入",
    Reason.MINOR_UNACCOMPANIED: "未成年人需监护人陪同",
    Reason.FORMAT_NOT_ACCEPTED: "本场所不接受此类证件",
    Reason.LANE_BUSY: "通道忙，请重新扫码",
    Reason.INTERNAL_ERROR: "系统故障，请联系工作人员",
    Reason.GATE_DOWN: "闸机故障，请联系工作人员",
    Reason.OUTSIDE_HOURS: "不在通行时段",
    Reason.NOT_INVITED: "未受邀请",
    # Not in the vocabulary yet (DESIGN §3): shown once it exists.
    "malformed_document": "证件号码无效",
}
REASON_ZH_FALLBACK = "未通过"
VERDICT_ZH = {Verdict.ALLOW: "请通行", Verdict.DENY: "禁止通行"}


@dataclass(frozen=True, slots=True, kw_only=True)
class DisplayEvent:
    """What a lane display shows for one decided scan (nothing a bystander may not see)."""

    lane_id: str
    seq: int
    ts: float
    verdict: str  # "allow" / "deny"
    verdict_zh: str  # the large text and what is spoken
    reason: str | None  # the reason code, None when allowed without remark
    reason_zh: str | None
    masked_name: str | None  # None when the scan named nobody we could verify

    @property
    def spoken(self) -> str:
        """The sentence the tablet speaks: the verdict, then the reason of a denial."""
        if self.verdict == Verdict.ALLOW or not self.reason_zh:
            return self.verdict_zh
        return f"{self.verdict_zh}，{self.reason_zh}"

    def as_json(self) -> dict[str, object]:
        return {
            "lane_id": self.lane_id,
            "seq": self.seq,
            "ts": self.ts,
            "verdict": self.verdict,
            "verdict_zh": self.verdict_zh,
            "reason": self.reason,
            "reason_zh": self.reason_zh,
            "masked_name": self.masked_name,
            "spoken": self.spoken,
        }


def event_from_record(record: ScanDecided, seq: int) -> DisplayEvent:
    """The display event of a journalled scan."""
    verdict = record.decision.verdict
    reason = record.decision.reason
    reason_zh = None
    if reason is not None:
        reason_zh = REASON_ZH.get(reason.value, REASON_ZH_FALLBACK)
    return DisplayEvent(
        lane_id=record.lane_id,
        seq=seq,
        ts=record.ts,
        verdict=verdict.value,
        verdict_zh=VERDICT_ZH[verdict],
        reason=reason.value if reason is not None else None,
        reason_zh=reason_zh,
        masked_name=record.person.masked_name if record.person is not None else None,
    )


_END = None  # the end-of-stream marker a subscriber's queue yields on close()


class Subscription:
    """One tablet's view of one lane: a bounded queue the hub fills and the SSE handler drains."""

    def __init__(self, lane_id: str, size: int) -> None:
        self.lane_id = lane_id
        self.queue: asyncio.Queue[DisplayEvent | None] = asyncio.Queue(maxsize=size)
        self.dropped = 0

    def offer(self, event: DisplayEvent | None) -> bool:
        """Queue an event without waiting; a full queue loses its oldest. True if one was lost."""
        lost = False
        while True:
            try:
                self.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.queue.get_nowait()
                self.dropped += 1
                lost = True
            else:
                return lost

    async def events(self) -> AsyncIterator[DisplayEvent]:
        while (event := await self.queue.get()) is not _END:
            assert event is not None
            yield event


class DisplayHub:
    """Fans decided scans out to the tablets watching each lane (see the module docstring)."""

    def __init__(self, lane_ids: frozenset[str], *, queue_size: int = 8) -> None:
        self.lane_ids = lane_ids
        self.queue_size = queue_size
        self.published = 0
        self.dropped = 0
        self.last: dict[str, DisplayEvent] = {}
        self._subscribers: dict[str, set[Subscription]] = {lane: set() for lane in lane_ids}
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribers(self, lane_id: str) -> int:
        return len(self._subscribers.get(lane_id, ()))

    def subscribe(self, lane_id: str) -> Subscription:
        """A new subscription (KeyError for a lane this gateway does not run)."""
        subscribers = self._subscribers[lane_id]
        subscription = Subscription(lane_id, self.queue_size)
        if self._closed:
            subscription.offer(_END)
        else:
            subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.get(subscription.lane_id, set()).discard(subscription)

    def publish(self, record: ScanDecided, seq: int) -> None:
        """Called by a lane after the scan is journalled; never blocks, never raises."""
        subscribers = self._subscribers.get(record.lane_id)
        if subscribers is None or self._closed:
            return
        event = event_from_record(record, seq)
        self.last[record.lane_id] = event
        self.published += 1
        for subscription in subscribers:
            if subscription.offer(event):
                self.dropped += 1

    def recent(
        self, lane_id: str, within_s: float, now: float | None = None
    ) -> DisplayEvent | None:
        """The lane's last event if it is younger than ``within_s`` (what a tablet that just
        connected should still show)."""
        event = self.last.get(lane_id)
        now = time.time() if now is None else now
        if event is None or now - event.ts > within_s:
            return None
        return event

    def close(self) -> None:
        """End every stream; later subscriptions end at once."""
        self._closed = True
        for subscribers in self._subscribers.values():
            for subscription in subscribers:
                subscription.offer(_END)
            subscribers.clear()
