"""Signed bundles: the pinned key, the kind and a strictly newer version, or a refusal."""

from __future__ import annotations

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from suishen.protocol.bundles import open_bundle, seal_bundle
from suishen.protocol.errors import BundleError

HUB = ed25519.Ed25519PrivateKey.generate()


def make(kind="watchlist", version=3, key=HUB, body=None) -> bytes:
    return seal_bundle(
        kind=kind, version=version, issued_at=1000, body=body or {"k": [1, 2]}, key=key
    )


def test_a_good_bundle_opens():
    """A bundle signed by the pinned key, of the asked kind and newer, opens with its body."""
    bundle = open_bundle(make(), pinned_key=HUB.public_key(), kind="watchlist", newer_than=2)
    assert (bundle.version, bundle.body) == (3, {"k": [1, 2]})


@pytest.mark.parametrize(
    ("data", "kind", "newer_than", "problem"),
    [
        (make(key=ed25519.Ed25519PrivateKey.generate()), "watchlist", 0, "bad_signature"),
        (make(), "trust", 0, "wrong_kind"),
        (make(version=3), "watchlist", 3, "stale"),
        (make(version=3), "watchlist", 4, "stale"),
        (b"\x00garbage", "watchlist", 0, "malformed"),
    ],
)
def test_bad_bundles_are_refused(data, kind, newer_than, problem):
    """Another signer, another kind, an old version or garbage each raise their problem."""
    with pytest.raises(BundleError) as info:
        open_bundle(data, pinned_key=HUB.public_key(), kind=kind, newer_than=newer_than)
    assert info.value.problem == problem


def test_tampered_body_is_a_bad_signature():
    """Changing the body after signing breaks the signature."""
    tag = cbor2.loads(make())
    content = cbor2.loads(tag.value[2])
    content["body"] = {"k": [9]}
    tag.value[2] = cbor2.dumps(content)
    with pytest.raises(BundleError) as info:
        open_bundle(cbor2.dumps(tag), pinned_key=HUB.public_key(), kind="watchlist")
    assert info.value.problem == "bad_signature"


@pytest.mark.parametrize("size", [0, 23, 24, 255, 256, 65535, 65536, 100_000])
def test_to_be_signed_is_the_sig_structure(size):
    """The one-copy Sig_structure of a bundle equals cose.sig_structure at every CBOR head size."""
    from suishen.protocol.bundles import _to_be_signed  # noqa: PLC0415 - private helper
    from suishen.protocol.cose import decode_sign1, sig_structure  # noqa: PLC0415

    message = decode_sign1(make(body={"blob": bytes(size)}))
    assert _to_be_signed(message) == sig_structure(message.protected_raw, message.payload)
