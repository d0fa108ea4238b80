"""Shared fixtures: issuer keys and a code factory (fixed clock, no wall-clock reads)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, settings

from suishen.protocol.codes import Identity, issue_ssc1
from suishen.protocol.cose import PrivateKey, kid_of, spki_der
from suishen.protocol.trust import TrustList, trusted_key_from_public_key

# Property tests check behaviour, not speed: no per-example deadline and no "too slow" health
# check, which fail at random on a loaded 2-core machine (benchmarks measure speed, in bench/).
settings.register_profile("suishen", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suishen")

NOW = 1_790_000_000  # a fixed "now" for verification tests


def identity(**overrides: str) -> Identity:
    fields = {
        "idt": "RIC",
        "idn": "11010519491231002X",
        "nat": "CHN",
        "nm": "张三明",
        "dob": "1949-12-31",
        "st": "G",
    }
    fields.update(overrides)
    return Identity(**fields)


@pytest.fixture(params=["ES256", "EdDSA"])
def issuer_key(request) -> PrivateKey:
    if request.param == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def trust(issuer_key) -> TrustList:
    return TrustList([trusted_key_from_public_key(issuer_key.public_key(), issuer="CN-SH")])


@pytest.fixture
def make_code(issuer_key) -> Callable[..., str]:
    kid = kid_of(spki_der(issuer_key.public_key()))

    def make(*, iat: int = NOW - 10, ttl_s: int = 120, iss: str = "CN-SH", **fields: str) -> str:
        return issue_ssc1(
            identity=identity(**fields),
            key=issuer_key,
            kid=kid,
            iss=iss,
            iat=iat,
            ttl_s=ttl_s,
            cti=secrets.token_bytes(16),
        )

    return make
