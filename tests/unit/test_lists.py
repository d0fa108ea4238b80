"""Lists in effect: signed bundles on disk, atomic install of newer ones, age, compact watchlist."""

from __future__ import annotations

import gc
import hashlib
import os
import sys
import time
import tracemalloc

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from suishen.gateway.lists import (
    Lists,
    Roster,
    RosterEntry,
    WatchEntry,
    Watchlist,
    roster_body,
    watchlist_body,
)
from suishen.gateway.records import AlertRoute, WatchLevel
from suishen.protocol.bundles import seal_bundle
from suishen.protocol.errors import BundleError
from suishen.protocol.trust import trusted_key_from_public_key

HUB = ed25519.Ed25519PrivateKey.generate()
NOW = 1_790_000_000


def key(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


DENY = WatchEntry(level=WatchLevel.DENY, route=AlertRoute.POLICE, reason="wanted")
NOTIFY = WatchEntry(
    level=WatchLevel.NOTIFY, route=AlertRoute.STAFF, reason="missing", expires_at=NOW + 60
)


def bundle(kind: str, version: int, body, *, issued_at: int = NOW - 100, signer=HUB) -> bytes:
    return seal_bundle(kind=kind, version=version, issued_at=issued_at, body=body, key=signer)


def trust_body() -> dict:
    issuer = ed25519.Ed25519PrivateKey.generate()
    return {
        "version": 1,
        "keys": [trusted_key_from_public_key(issuer.public_key(), issuer="CN-SH").to_json()],
    }


def test_watchlist_lookup_levels_routes_and_expiry():
    """Entries come back with level, route, reason; an expired one is not in force."""
    watchlist = Watchlist.from_entries([(key(1), DENY), (key(2), NOTIFY)])
    assert watchlist.get(key(1), NOW) == DENY
    assert watchlist.get(key(2), NOW) == NOTIFY
    assert watchlist.get(key(2), NOW + 60) is None
    assert watchlist.entry(key(2)) == NOTIFY
    assert watchlist.get(key(3), NOW) is None
    assert watchlist.get("not hex", NOW) is None
    assert key(1) in watchlist and key(3) not in watchlist and len(watchlist) == 2
    assert Watchlist.from_body(watchlist.to_body()).get(key(1), NOW) == DENY


def test_duplicate_watchlist_keys_keep_the_later_entry():
    """A key listed twice resolves to its later entry."""
    watchlist = Watchlist.from_entries([(key(1), DENY), (key(1), NOTIFY)])
    assert watchlist.entry(key(1)) == NOTIFY


@pytest.mark.parametrize(
    "body",
    [
        {"format": 2},
        {"format": 1, "keys": b"x" * 31, "flags": b"\0", "expires": bytes(4),
         "reason_index": bytes(2), "reasons": ["a"]},
        {"format": 1, "keys": b"x" * 32, "flags": b"\0", "expires": bytes(4),
         "reason_index": b"\1\0", "reasons": ["a"]},
        {"format": 1, "keys": "text", "flags": b"", "expires": b"", "reason_index": b"",
         "reasons": []},
    ],
)  # fmt: skip
def test_malformed_watchlist_bodies_are_refused(body):
    """Wrong format, uneven columns, bad reason indexes or wrong types are 'malformed'."""
    with pytest.raises(BundleError) as info:
        Watchlist.from_body(body)
    assert info.value.problem == "malformed"


def test_roster_validity_sites_and_cards():
    """A worker is registered at a site between valid_from and valid_to; cards map to keys."""
    roster = Roster.from_body(
        roster_body(
            [
                (key(1), RosterEntry(site_id="s1", valid_from=NOW - 10, valid_to=NOW + 10,
                                     name_mask="张*明", card="0012345")),
                (key(1), RosterEntry(site_id="s2")),
            ]
        )
    )  # fmt: skip
    assert roster.get(key(1), "s1", NOW) is not None
    assert roster.get(key(1), "s1", NOW + 11) is None
    assert roster.get(key(1), "s1", NOW - 11) is None
    assert roster.get(key(1), "s2", NOW + 10**6) is not None
    assert roster.get(key(2), "s1", NOW) is None
    assert roster.person_for_card("s1", "0012345") == key(1)
    assert len(roster) == 2
    with pytest.raises(BundleError):
        Roster.from_body({"format": 1, "workers": [{"person_key": key(1)}]})


def test_bundles_load_from_disk_and_report_age(tmp_path):
    """Last-known-good files load on start; status gives version, entries and age."""
    (tmp_path / "watchlist.bundle").write_bytes(
        bundle("watchlist", 4, watchlist_body([(key(1), DENY)]))
    )
    (tmp_path / "trust.bundle").write_bytes(bundle("trust", 2, trust_body()))
    lists = Lists(pinned_key=HUB.public_key(), directory=tmp_path)
    problems = lists.load()
    assert set(problems) == {"roster", "calendar", "emergency"}  # no files for these yet
    status = {s.kind: s for s in lists.status(NOW)}
    assert (status["watchlist"].version, status["watchlist"].entries) == (4, 1)
    assert status["watchlist"].age_s == 100
    assert (status["trust"].version, status["trust"].entries) == (2, 1)
    assert status["roster"].version == 0 and status["roster"].problem == "no bundle file yet"
    assert lists.watch(key(1), NOW) == DENY
    assert len(lists.trust) == 1


def test_install_newer_swaps_and_persists(tmp_path):
    """A newer bundle takes effect at once and becomes the file a restart loads."""
    lists = Lists(pinned_key=HUB.public_key(), directory=tmp_path)
    lists.load()
    assert lists.install("watchlist", bundle("watchlist", 1, watchlist_body([]))) == 1
    before = lists.watchlist
    version = lists.install(
        "watchlist", bundle("watchlist", 7, watchlist_body([(key(5), DENY)]), issued_at=NOW)
    )
    assert version == 7 and lists.watch(key(5), NOW) == DENY
    assert before.get(key(5), NOW) is None  # a reader holding the old list is unaffected
    roster = roster_body([(key(5), RosterEntry(site_id="s1"))])
    assert lists.install("roster", bundle("roster", 3, roster)) == 3
    assert lists.worker(key(5), "s1", NOW) is not None
    restarted = Lists(pinned_key=HUB.public_key(), directory=tmp_path)
    missing = dict.fromkeys(("trust", "calendar", "emergency"), "no bundle file yet")
    assert restarted.load() == missing
    assert restarted.version("watchlist") == 7 and restarted.version("roster") == 3
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_visible_version_is_already_on_disk(tmp_path):
    """The bundle file is written before the new version becomes visible (a reader that sees
    version N on another thread finds N's file); a failed write still installs, then raises."""
    seen_while_writing = []

    class Watching(Lists):
        def _write(self, kind, data):
            seen_while_writing.append(self.version(kind))
            super()._write(kind, data)

    lists = Watching(pinned_key=HUB.public_key(), directory=tmp_path)
    lists.load()
    lists.install("watchlist", bundle("watchlist", 2, watchlist_body([])))
    assert seen_while_writing == [0]
    assert (tmp_path / "watchlist.bundle").exists()

    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the lists directory should be")
    unwritable = Lists(pinned_key=HUB.public_key(), directory=blocked)
    with pytest.raises(OSError, match="not-a-dir"):
        unwritable.install("watchlist", bundle("watchlist", 3, watchlist_body([(key(1), DENY)])))
    assert unwritable.version("watchlist") == 3 and unwritable.watch(key(1), NOW) == DENY


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (bundle("watchlist", 5, watchlist_body([])), "stale"),
        (bundle("watchlist", 4, watchlist_body([])), "stale"),
        (bundle("watchlist", 9, watchlist_body([]), signer=ed25519.Ed25519PrivateKey.generate()),
         "bad_signature"),
        (bundle("roster", 9, roster_body([])), "wrong_kind"),
        (bundle("watchlist", 9, {"format": 1}), "malformed"),
        (b"\xa0garbage", "malformed"),
    ],
)  # fmt: skip
def test_refused_bundles_keep_the_last_known_good(tmp_path, data, problem):
    """Older, same-version, foreign-signed, wrong-kind or malformed bundles are refused and
    neither the list in effect nor the file on disk changes."""
    lists = Lists(pinned_key=HUB.public_key(), directory=tmp_path)
    good = bundle("watchlist", 5, watchlist_body([(key(1), DENY)]))
    lists.install("watchlist", good)
    with pytest.raises(BundleError) as info:
        lists.install("watchlist", data)
    assert info.value.problem == problem
    assert lists.version("watchlist") == 5 and lists.watch(key(1), NOW) == DENY
    assert (tmp_path / "watchlist.bundle").read_bytes() == good


def test_a_corrupt_file_on_disk_is_reported_not_fatal(tmp_path):
    """A damaged bundle file leaves that list empty and says why; the others load."""
    (tmp_path / "watchlist.bundle").write_bytes(b"\x00broken")
    (tmp_path / "roster.bundle").write_bytes(bundle("roster", 1, roster_body([])))
    lists = Lists(pinned_key=HUB.public_key(), directory=tmp_path)
    problems = lists.load()
    assert problems["watchlist"].startswith("malformed")
    assert lists.version("roster") == 1 and len(lists.watchlist) == 0


def random_body(count: int) -> dict:
    return {
        "format": 1,
        "keys": os.urandom(32 * count),
        "flags": bytes([1]) * count,
        "expires": bytes(4 * count),
        "reason_index": bytes(2 * count),
        "reasons": ["wanted"],
    }


def test_watchlist_bytes_per_entry_measured_with_tracemalloc():
    """tracemalloc over building a 200,000-entry list: under 64 bytes per entry (~47)."""
    count = 200_000
    body = random_body(count)
    gc.collect()
    tracemalloc.start()
    try:
        watchlist = Watchlist.from_body(body)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_entry = (held + len(body["keys"])) / count  # the keys column is the body's own bytes
    assert per_entry < 64, per_entry
    assert len(watchlist) == count


def test_a_million_entry_watchlist_is_compact_and_fast():
    """1,000,000 entries hold under 64 MB in all and look-ups stay O(1) (microseconds)."""
    count = 1_000_000
    body = random_body(count)
    started = time.perf_counter()
    watchlist = Watchlist.from_body(body)
    assert time.perf_counter() - started < 10  # ~0.4 s measured
    parts = [getattr(watchlist, name) for name in Watchlist.__slots__]
    held = sys.getsizeof(watchlist) + sum(sys.getsizeof(p) for p in parts)
    assert held / count < 64, held / count
    assert watchlist.nbytes / count < 64
    probes = [body["keys"][i * 32 : (i + 1) * 32].hex() for i in range(0, count, count // 2000)]
    misses = [os.urandom(32).hex() for _ in range(2000)]
    started = time.perf_counter()
    assert all(watchlist.get(k, NOW) is not None for k in probes)
    assert all(watchlist.get(k, NOW) is None for k in misses)
    per_lookup = (time.perf_counter() - started) / (len(probes) + len(misses))
    assert per_lookup < 100e-6, per_lookup  # generous: ~5 us measured
