"""Codes verified per CPU second on one core: ours vs. the bare signature check vs. pycose.

For ES256 and EdDSA, over the same distinct codes in the same run:
- bare: cryptography's signature verify on the same Sig_structure bytes (the floor);
- ours: suishen.protocol.codes.verify, QR text to VerifiedCode (prefix, base45, zlib, COSE,
  kid look-up, signature, claims, issuer, times);
- pycose: the `base45` package + zlib + pycose Sign1Message.decode/verify_signature + cbor2.
The paths are timed side by side on the same chunks of codes (see measure()).
Targets: ours >= 0.8 x bare (issue 12), and >= 2 x pycose where that is reachable at all (see
main: for EdDSA pycose is within 1.6 x of the bare signature check, so nobody can be 2 x it).
"""

from __future__ import annotations

import gc
import secrets
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import base45 as base45_package
import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pycose.keys import CoseKey
from pycose.messages import Sign1Message

from bench.common import pin_one_core, print_table, write_results
from suishen.logs import configure as configure_logs
from suishen.protocol import base45
from suishen.protocol.codes import Identity, VerifiedCode, issue_ssc1, verify
from suishen.protocol.cose import decode_sign1, kid_of, sig_structure, spki_der
from suishen.protocol.trust import TrustList, trusted_key_from_public_key

N_CODES = 2000
ROUNDS = 5
CHUNK = 100  # codes per path between switches (~5 ms of ours)
PYCOSE_CODES = 500
# CPU time of this (single-threaded) process: codes per second of one core's work. Wall time
# on a shared machine counts whatever else ran on the core too, and it does not hit the three
# paths alike (seen here: ours/bare 0.48 by wall time at load 5.6, 0.74 on an idle machine).
CLOCK = time.process_time
IAT = 1_790_000_000
NOW = IAT + 30


def make_codes(key, n: int) -> list[str]:
    kid = kid_of(spki_der(key.public_key()))
    out = []
    for i in range(n):
        identity = Identity(
            idt="RIC",
            idn=f"3101011990{i % 10000:04d}123X"[:18],
            nat="CHN",
            nm="张三明",
            dob="1990-01-01",
            st="G",
        )
        out.append(
            issue_ssc1(
                identity=identity,
                key=key,
                kid=kid,
                iss="CN-SH",
                iat=IAT,
                ttl_s=120,
                cti=secrets.token_bytes(16),
            )
        )
    return out


def bare_inputs(texts: list[str]) -> list[tuple[bytes, bytes]]:
    out = []
    for text in texts:
        message = decode_sign1(zlib.decompress(base45.decode(text[5:])))
        out.append((sig_structure(message.protected_raw, message.payload), message.signature))
    return out


def run_alg(key) -> dict:
    public = key.public_key()
    texts = make_codes(key, N_CODES)
    trust = TrustList([trusted_key_from_public_key(public, issuer="CN-SH")])
    assert all(isinstance(verify(t, trust, NOW), VerifiedCode) for t in texts[:50])

    bare = bare_inputs(texts)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = ec.ECDSA(hashes.SHA256())

        # The floor is cryptography's verify alone: DER signatures made ahead of time.
        bare = [
            (
                tbs,
                encode_dss_signature(int.from_bytes(s[:32], "big"), int.from_bytes(s[32:], "big")),
            )
            for tbs, s in bare
        ]

        def bare_verify(item):
            tbs, der = item
            public.verify(der, tbs, algorithm)

        cose_key = CoseKey.from_dict(
            {
                "KTY": "EC2",
                "CURVE": "P_256",
                "X": public.public_numbers().x.to_bytes(32, "big"),
                "Y": public.public_numbers().y.to_bytes(32, "big"),
            }
        )
    else:

        def bare_verify(item):
            tbs, sig = item
            public.verify(sig, tbs)

        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        cose_key = CoseKey.from_dict({"KTY": "OKP", "CURVE": "ED25519", "X": raw})

    def ours(text):
        verify(text, trust, NOW)

    def pycose_path(text):
        cose = zlib.decompress(base45_package.b45decode(text[5:]))
        message = Sign1Message.decode(cose)
        message.key = cose_key
        if not message.verify_signature():
            raise AssertionError("pycose rejected a valid code")
        cbor2.loads(message.payload)

    pycose_path(texts[0])
    return measure(
        {
            "bare": (bare_verify, bare),
            "ours": (ours, texts),
            "pycose": (pycose_path, texts),
        }
    )


def measure(paths: dict[str, tuple[Callable[[Any], object], Sequence[Any]]]) -> dict:
    """Per-item CPU time of each path, bare and ours interleaved chunk by chunk.

    A shared machine's load comes and goes within seconds and slows every path alike while it
    lasts; timing one path over all its items and then the next (seconds apart) lets a burst
    land on one path only (seen here: bare rates 16k..20k/s within one run, so ours/bare moved
    0.76..0.90 between runs). So each round walks the codes in chunks of CHUNK and times bare
    and ours on the same chunk back to back, summing CPU time per path; a round's ratio
    compares sums taken side by side. pycose (~40x slower for ES256, and a heavy user of the
    caches that would leave the next chunk cold) is timed after them, on PYCOSE_CODES codes.
    Rates and ratios are the medians over ROUNDS rounds."""
    n = len(paths["bare"][1])
    per_round: list[dict[str, float]] = []
    for _ in range(ROUNDS):
        spent = {"bare": 0.0, "ours": 0.0}
        for start in range(0, n, CHUNK):
            for label in spent:
                work, items = paths[label]
                chunk = items[start : start + CHUNK]
                begin = CLOCK()
                for item in chunk:
                    work(item)
                spent[label] += CLOCK() - begin
        work, items = paths["pycose"]
        begin = CLOCK()
        for item in items[:PYCOSE_CODES]:
            work(item)
        per_round.append(
            {
                "bare": n / spent["bare"],
                "ours": n / spent["ours"],
                "pycose": PYCOSE_CODES / (CLOCK() - begin),
            }
        )
    rates: dict = {label: _median([r[label] for r in per_round]) for label in paths}
    rates["ours_vs_bare"] = _median([r["ours"] / r["bare"] for r in per_round])
    rates["ours_vs_pycose"] = _median([r["ours"] / r["pycose"] for r in per_round])
    rates["pycose_ceiling"] = _median([r["bare"] / r["pycose"] for r in per_round])
    rates["samples"] = {label: [r[label] for r in per_round] for label in paths}
    return rates


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> dict:
    configure_logs("warning")
    pin_one_core()
    gc.collect()
    gc.freeze()  # long-lived objects out of the collector's way, alike for all three paths
    results = {}
    rows = []
    for name, key in (
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
    ):
        rates = run_alg(key)
        ratio_bare = rates["ours_vs_bare"]
        ratio_pycose = rates["ours_vs_pycose"]
        # pycose checks the signature with the same cryptography call, so no verifier can beat
        # it by more than bare/pycose (the signature alone vs pycose): for EdDSA that ceiling
        # is ~1.6, and ">= 2 x pycose" cannot be met by anyone. The target applies only where
        # it is reachable; ours/bare (issue 12) decides either way.
        ceiling = rates["pycose_ceiling"]
        target_pycose = 2.0 if ceiling >= 2.0 else None
        results[name] = {
            "bare_per_s": rates["bare"],
            "ours_per_s": rates["ours"],
            "pycose_per_s": rates["pycose"],
            "ours_vs_bare": ratio_bare,
            "ours_vs_pycose": ratio_pycose,
            "pycose_ceiling": ceiling,
            "target_vs_bare": 0.8,
            "target_vs_pycose": target_pycose,
            "met": ratio_bare >= 0.8 and (target_pycose is None or ratio_pycose >= target_pycose),
            "samples_per_s": rates["samples"],
        }
        rows.append(
            (
                name,
                rates["bare"],
                rates["ours"],
                rates["pycose"],
                ratio_bare,
                f"{ratio_pycose:.2f}"
                if target_pycose
                else f"{ratio_pycose:.2f} (max {ceiling:.2f})",
                "yes" if results[name]["met"] else "NO",
            )
        )
    print_table(
        f"verify: codes per CPU second on one core (median of {ROUNDS} rounds, {N_CODES} "
        f"distinct codes, paths interleaved every {CHUNK})",
        (
            "alg",
            "bare sig/s",
            "ours/s",
            "pycose/s",
            "ours/bare (>=0.8)",
            "ours/pycose (>=2 if reachable)",
            "met",
        ),
        rows,
    )
    path = write_results(
        "verify",
        {
            "codes": N_CODES,
            "clock": "process CPU time",
            "method": f"paths interleaved per chunk of {CHUNK} codes, median of {ROUNDS} rounds",
            "results": results,
        },
    )
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
