"""`suishen code verify` as a user runs it: process start, and a stream of codes (issue 12).

(a) start: wall time of ``suishen code verify --trust T < /dev/null`` (interpreter start,
    imports, trust file, no code), against a bare ``python -c pass`` in the same samples.
    Target <= 150 ms.
(b) stream: N_CODES distinct valid ES256 codes on stdin, one JSON verdict a line on stdout
    (read and counted here), wall time including process start. Codes per second against the
    bare ES256 signature-verify rate of cryptography in the same run (bench/verify.py's
    floor: pre-made DER signatures over the Sig_structure, in this process). Target >= 0.5 x bare.
Samples are interleaved (bare, start, stream) and the median of SAMPLES is quoted.
"""

from __future__ import annotations

import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from bench.common import print_table, write_results
from suishen.protocol import base45
from suishen.protocol.codes import Identity, issue_ssc1
from suishen.protocol.cose import decode_sign1, kid_of, sig_structure, spki_der
from suishen.protocol.trust import TrustList, trusted_key_from_public_key

N_CODES = 20_000
SAMPLES = 3
IAT = 1_790_000_000
NOW_ISO = "2026-09-21T14:13:50Z"  # IAT + 30 s
TARGET_START_S = 0.150
TARGET_RATIO = 0.5
COMMAND = (sys.executable, "-m", "suishen", "code", "verify")


def make_codes(key: ec.EllipticCurvePrivateKey, n: int) -> list[str]:
    kid = kid_of(spki_der(key.public_key()))
    return [
        issue_ssc1(
            identity=Identity(
                idt="RIC", idn=f"3101{i:014d}", nat="CHN", nm="张三明", dob="1990-01-01", st="G"
            ),
            key=key,
            kid=kid,
            iss="CN-SH",
            iat=IAT,
            ttl_s=120,
            cti=secrets.token_bytes(16),
        )
        for i in range(n)
    ]


def bare_rate(key: ec.EllipticCurvePrivateKey, texts: list[str]) -> float:
    public, algorithm = key.public_key(), ec.ECDSA(hashes.SHA256())
    items = []
    for text in texts:
        message = decode_sign1(zlib.decompress(base45.decode(text[5:])))
        s = message.signature
        der = encode_dss_signature(int.from_bytes(s[:32], "big"), int.from_bytes(s[32:], "big"))
        items.append((sig_structure(message.protected_raw, message.payload), der))
    start = time.perf_counter()
    for tbs, der in items:
        public.verify(der, tbs, algorithm)
    return len(items) / (time.perf_counter() - start)


def timed_run(argv: tuple[str, ...], stdin: bytes) -> tuple[float, bytes]:
    start = time.perf_counter()
    done = subprocess.run(argv, input=stdin, capture_output=True, check=True)
    return time.perf_counter() - start, done.stdout


def main() -> dict:
    root = Path(tempfile.mkdtemp(prefix="suishen-bench-cli-"))
    try:
        key = ec.generate_private_key(ec.SECP256R1())
        trust_path = root / "trust.json"
        trust = TrustList([trusted_key_from_public_key(key.public_key(), issuer="CN-SH")])
        trust_path.write_text(json.dumps(trust.to_json()), encoding="utf-8")
        texts = make_codes(key, N_CODES)
        stream = ("\n".join(texts) + "\n").encode("ascii")
        argv = (*COMMAND, "--trust", str(trust_path), "--now", NOW_ISO)
        timed_run(argv, b"")  # warm the file cache
        samples: dict[str, list[float]] = {"bare": [], "python": [], "start": [], "stream": []}
        for _ in range(SAMPLES):
            samples["bare"].append(bare_rate(key, texts[:2000]))
            samples["python"].append(timed_run((sys.executable, "-c", "pass"), b"")[0])
            samples["start"].append(timed_run(argv, b"")[0])
            wall, out = timed_run(argv, stream)
            lines = out.splitlines()
            if len(lines) != N_CODES or not all(json.loads(line)["ok"] for line in lines[:100]):
                raise AssertionError("suishen code verify did not answer every code ok")
            samples["stream"].append(N_CODES / wall)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {name: statistics.median(values) for name, values in samples.items()}
    ratio = med["stream"] / med["bare"]
    results = {
        "codes": N_CODES,
        "samples": SAMPLES,
        "python_start_s": med["python"],
        "start_s": med["start"],
        "target_start_s": TARGET_START_S,
        "start_met": med["start"] <= TARGET_START_S,
        "bare_verify_per_s": med["bare"],
        "stream_codes_per_s": med["stream"],
        "stream_vs_bare": ratio,
        "target_vs_bare": TARGET_RATIO,
        "stream_met": ratio >= TARGET_RATIO,
        "samples_raw": samples,
    }
    met = {True: "yes", False: "NO"}
    print_table(
        f"cli: suishen code verify, median of {SAMPLES} (ES256, {N_CODES:,} codes)",
        ("measurement", "unit", "value", "ratio", "target", "met"),
        [
            ("bare python -c pass", "ms", med["python"] * 1000, "", "", ""),
            (
                "start (no codes)",
                "ms",
                med["start"] * 1000,
                "",
                f"<= {TARGET_START_S * 1000:.0f}",
                met[results["start_met"]],
            ),
            ("bare ES256 verify", "sig/s", med["bare"], "", "", ""),
            (
                f"{N_CODES:,} codes incl. start",
                "codes/s",
                med["stream"],
                f"{ratio:.2f} x bare",
                f">= {TARGET_RATIO} x bare",
                met[results["stream_met"]],
            ),
        ],
    )
    path = write_results("cli", results)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
