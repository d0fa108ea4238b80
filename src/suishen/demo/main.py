"""The one-command demo (`make demo` / `suishen demo`): the most complete working path so far.

Stage 1 (codes): make two issuers (ES256 and EdDSA), a trust file, and a handful of codes a
person might show at a door — fresh, expired, not yet valid, tampered, from an untrusted issuer,
garbage — then verify each offline and print the verdicts with their reason codes.

Stage 3 (the hub): see suishen.demo.hub_stage.  Stage 4 (site operations at a second building:
an invited visitor, a lane closed by its time profile, a fire alarm releasing the exits with the
muster list): suishen.demo.site_ops_stage.  Stage 5 (the web UI, one login per role, up until
Ctrl-C unless --no-wait): suishen.demo.web_stage.  Stage 6 (a tracing case):
suishen.demo.tracing_tour.

Stage 2 (a site): simulated QR scanners on pty pairs and Modbus turnstiles on loopback TCP,
wired to a real gateway (lanes, policy, journal, local HTTP). People scan at the door; the
demo prints what each lane decided, whether the turnstile got the open command, and the
gateway's own /status (occupancy, journal).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import tempfile
import time
import zlib
from pathlib import Path

import aiohttp
import cbor2

from suishen.demo import hub_stage, web_stage
from suishen.demo.issuer import IssuerKey, build_trust_file, generate_issuer
from suishen.demo.simsite import LaneSpec, SimSite
from suishen.gateway.config import load_config
from suishen.gateway.records import Direction, SiteKind
from suishen.gateway.service import GatewayService
from suishen.logs import configure as configure_logs
from suishen.protocol import base45
from suishen.protocol.codes import Identity, Rejection, issue_ssc1, verify
from suishen.protocol.person import mask_name, mask_number
from suishen.protocol.trust import TrustList

PEOPLE = (
    Identity(idt="RIC", idn="11010519491231002X", nat="CHN", nm="张三明", dob="1949-12-31", st="G"),
    Identity(idt="PP", idn="E12345678", nat="GBR", nm="SMITH JOHN", dob="1980-01-01", st="G"),
    Identity(idt="RIC", idn="310101200801011234", nat="CHN", nm="李小红", dob="2008-01-01", st="Y"),
    Identity(idt="RIC", idn="440301199003073411", nat="CHN", nm="王五", dob="1990-03-07", st="R"),
)


def _tamper(text: str) -> str:
    """Change the status colour inside a signed code without re-signing it."""
    tag = cbor2.loads(zlib.decompress(base45.decode(text[5:])))
    claims = cbor2.loads(tag.value[2])
    claims[-261]["st"] = "G"
    tag.value[2] = cbor2.dumps(claims)
    return "SSC1:" + base45.encode(zlib.compress(cbor2.dumps(tag)))


def run_codes_demo(state_dir: Path) -> list[dict[str, object]]:
    """Issue and verify the sample codes; return one row per code."""
    es = generate_issuer(state_dir / "issuer-es256", alg="ES256", issuer="CN-SH")
    ed = generate_issuer(state_dir / "issuer-eddsa", alg="EdDSA", issuer="CN-SH")
    rogue_dir = state_dir / "issuer-rogue"
    generate_issuer(rogue_dir, alg="ES256", issuer="CN-SH")
    del es, ed
    trust_doc = build_trust_file([state_dir / "issuer-es256", state_dir / "issuer-eddsa"])
    (state_dir / "trust.json").write_text(json.dumps(trust_doc, indent=2), encoding="utf-8")
    trust = TrustList.from_json(trust_doc)
    es_key = IssuerKey(state_dir / "issuer-es256")
    ed_key = IssuerKey(state_dir / "issuer-eddsa")
    rogue = IssuerKey(rogue_dir)
    now = int(time.time())
    cases = [
        ("fresh code, ES256", es_key.issue(PEOPLE[0], iat=now - 5)),
        ("fresh code, EdDSA, passport", ed_key.issue(PEOPLE[1], iat=now - 5)),
        ("yellow status", es_key.issue(PEOPLE[2], iat=now - 5)),
        ("red status", ed_key.issue(PEOPLE[3], iat=now - 5)),
        ("screenshot from 10 min ago", es_key.issue(PEOPLE[0], iat=now - 600)),
        ("clock of the phone ahead", es_key.issue(PEOPLE[0], iat=now + 600)),
        ("status changed after signing", _tamper(es_key.issue(PEOPLE[3], iat=now - 5))),
        ("signed by an untrusted key", rogue.issue(PEOPLE[0], iat=now - 5)),
        (
            "lifetime of one day",
            issue_ssc1(
                identity=PEOPLE[0],
                key=es_key.private_key,
                kid=es_key.kid,
                iss="CN-SH",
                iat=now - 5,
                ttl_s=86_400,
                cti=secrets.token_bytes(16),
            ),
        ),
        ("a URL, not a code", "https://example.invalid/?q=1"),
    ]
    rows = []
    for label, text in cases:
        result = verify(text, trust, now)
        if isinstance(result, Rejection):
            rows.append({"case": label, "ok": False, "reason": result.reason.value, "who": "-"})
        else:
            ident = result.identity
            who = f"{mask_name(ident.nm)} {mask_number(ident.idn)} st={ident.st}" if ident else "-"
            rows.append({"case": label, "ok": True, "reason": "-", "who": who})
    return rows


def print_rows(rows: list[dict[str, object]]) -> None:
    width = max(len(str(r["case"])) for r in rows)
    print(f"{'case':<{width}}  verdict   reason              who (masked)")
    print(f"{'-' * width}  --------  ------------------  ------------------------------")
    for row in rows:
        verdict = "ACCEPT" if row["ok"] else "REJECT"
        print(f"{row['case']!s:<{width}}  {verdict:<8}  {row['reason']!s:<18}  {row['who']}")


SITE_SCRIPT = (
    # (lane, who, what is shown, note)
    ("lobby-in", 0, "fresh", "green code"),
    ("lobby-in", 2, "fresh", "yellow code (this site denies yellow)"),
    ("lobby-in", 3, "fresh", "red code"),
    ("lobby-in", 1, "fresh", "passport holder, green"),
    ("lobby-in", 0, "fresh", "same person again, no exit between"),
    ("garage-in", 1, "replay", "screenshot of a code already used at the lobby"),
    ("lobby-out", 0, "fresh", "leaves"),
    ("garage-in", 0, "stale", "screenshot from 10 minutes ago"),
    ("garage-in", 0, "junk", "a URL instead of a code"),
)


async def run_site_demo(root: Path) -> tuple[list[dict[str, object]], dict[str, object]]:
    """Run a gateway against simulated devices; return the rows and the gateway's /status."""
    site = await SimSite.create(
        root,
        kind=SiteKind.BUILDING,
        lanes=[
            LaneSpec(id="lobby-in"),
            LaneSpec(id="garage-in"),
            LaneSpec(id="lobby-out", direction=Direction.OUT),
        ],
        rules_toml='status_yellow = "deny"\nanti_passback = "deny"\ncapacity_hard = 100\n',
        passage_delay_s=0.05,
    )
    service = GatewayService(load_config(site.config_path), environ=site.environ)
    task = asyncio.create_task(service.run())
    rows: list[dict[str, object]] = []
    try:
        async with asyncio.timeout(10):
            await service.wait_ready()
        await asyncio.sleep(0.2)  # let every device connect
        now = int(time.time())
        used: dict[int, str] = {}
        for lane, who, what, note in SITE_SCRIPT:
            if what == "junk":
                text = "https://example.invalid/?q=1"
            elif what == "replay":
                text = used[who]
            else:
                text = site.code(PEOPLE[who], iat=now - (600 if what == "stale" else 2))
                used[who] = text
            before = site.opens(lane)
            await site.scan(lane, text)
            await asyncio.sleep(0.25)  # decision, open and the passage sensor
            rows.append({"lane": lane, "note": note, "opened": site.opens(lane) > before})
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{service.http_port}/status"
            async with http.get(url) as response:
                status = await response.json()
    finally:
        service.stop()
        await task
        await site.aclose()
    journal = root / "state" / "journal.sqlite3"
    with sqlite3.connect(journal) as db:
        scans = db.execute(
            "SELECT lane_id, verdict, reason, masked_name FROM events WHERE kind = 'scan' "
            "ORDER BY seq"
        ).fetchall()
    for row, (lane_id, verdict, reason, masked) in zip(rows, scans, strict=True):
        assert row["lane"] == lane_id
        row.update(verdict=verdict, reason=reason or "-", who=masked or "-")
    return rows, status


def print_site_rows(rows: list[dict[str, object]], status: dict[str, object]) -> None:
    width = max(len(str(r["note"])) for r in rows)
    print(f"{'lane':<10}  {'what happened':<{width}}  verdict  reason             gate    who")
    print(f"{'-' * 10}  {'-' * width}  -------  -----------------  ------  ------")
    for r in rows:
        gate = "opened" if r["opened"] else "shut"
        print(
            f"{r['lane']!s:<10}  {r['note']!s:<{width}}  {r['verdict']!s:<7}  "
            f"{r['reason']!s:<17}  {gate:<6}  {r['who']}"
        )
    journal = status["journal"]
    assert isinstance(journal, dict)
    print(
        f"\ngateway /status: occupancy {status['occupancy']}, journal last seq "
        f"{journal['last_seq']}, {journal['backlog']} rows waiting for the hub"
    )


def main(state_dir: Path | None = None, *, no_wait: bool = False) -> int:
    configure_logs("error")  # the demo prints its own story; errors still show
    with tempfile.TemporaryDirectory(prefix="suishen-demo-") as tmp:
        root = Path(tmp) if state_dir is None else state_dir
        root.mkdir(parents=True, exist_ok=True)
        print("Suishen Gate demo, stage 1: issue codes and verify them offline\n")
        print_rows(run_codes_demo(root / "codes"))
        print(
            "\nStage 2: a building with three lanes: pty QR scanners and Modbus turnstiles "
            "(simulated),\na real gateway deciding by site policy and journalling every scan\n"
        )
        rows, status = asyncio.run(run_site_demo(root / "site"))
        print_site_rows(rows, status)
        print(
            "\nStage 3: the hub on embedded PostgreSQL (pgserver); the gateway syncs its journal "
            "over mutual TLS\nand long-polls signed lists; the hub puts a visitor on the "
            "watchlist\n"
        )
        hub_stage.main(root / "hub", wait=web_stage.should_wait(no_wait))
    return 0
