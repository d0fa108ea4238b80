"""The one-command demo (`make demo` / `suishen demo`): the most complete working path so far.

Stage 1 (codes): make two issuers (ES256 and EdDSA), a trust file, and a handful of codes a
person might show at a door — fresh, expired, not yet valid, tampered, from an untrusted issuer,
garbage — then verify each offline and print the verdicts with their reason codes.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
import zlib
from pathlib import Path

import cbor2

from suishen.commands.issuer import IssuerKey, build_trust_file, generate_issuer
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


def main(state_dir: Path | None = None) -> int:
    print("Suishen Gate demo, stage 1: issue codes and verify them offline\n")
    if state_dir is None:
        with tempfile.TemporaryDirectory(prefix="suishen-demo-") as tmp:
            rows = run_codes_demo(Path(tmp))
    else:
        state_dir.mkdir(parents=True, exist_ok=True)
        rows = run_codes_demo(state_dir)
    print_rows(rows)
    print(
        "\nStatus colours are policy, not verification: the gateway (next stage) denies red and"
        " applies the site's rule to yellow."
    )
    return 0
