"""Construction roster, attendance and muster on constructed data: a worker added by form or CSV
(document numbers turned into person keys with the pepper, only masks stored) reaches the site's
signed roster bundle with a new version, an expired one leaves it; a CSV with bad rows imports
the good ones and names each bad one (row, field, message); attendance and the muster list give
the answers known by construction; everything keeps to its scope."""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
from pathlib import Path

import asyncpg
import pytest
from babel.messages.pofile import read_po

from suishen.central.bundle_service import read_body
from suishen.central.errors import BadRequest, NotFound, PayloadTooLarge
from suishen.central.queries.roster import (
    AttendanceParams,
    MusterParams,
    RosterParams,
    attendance,
    muster,
    muster_groups,
    roster,
)
from suishen.central.scope import Scope
from suishen.central.store import workers
from suishen.central.store.workers import (
    MAX_ROWS,
    RosterInputError,
    add_worker,
    check_worker,
    expire_worker,
    import_roster,
)
from suishen.central.web import i18n
from suishen.protocol.identity.cnid import cnid_check_digit
from suishen.protocol.listbodies import roster_workers
from suishen.protocol.person import person_key
from tests.central.conftest import TODAY
from tests.central.hubkit import person, register

PEPPER = b"p" * 32
SITE = "build-a"
OTHER = "build-b"
MINE = Scope.sites([SITE])
NOW = dt.datetime.combine(TODAY, dt.time(6, 0), tzinfo=dt.UTC)  # 14:00 in Shanghai
M = dt.timedelta(minutes=1)


def ric(n: int) -> str:
    """A valid 18-digit resident ID number (Shanghai, born 1980), distinct per n."""
    body = f"31010119800101{n:03d}"
    return body + cnid_check_digit(body)


@pytest.fixture
async def sites(con: asyncpg.Connection) -> asyncpg.Connection:
    await register(con, "gw-a", SITE, kind="construction")
    await register(con, "gw-b", OTHER, kind="construction")
    await register(con, "gw-h", "hotel-1", kind="hotel")
    return con


async def roster_version(con: asyncpg.Connection) -> int:
    version: int = await con.fetchval("SELECT version FROM bundle_versions WHERE kind = 'roster'")
    return version


async def bundle_keys(con: asyncpg.Connection, site_id: str = SITE) -> set[str]:
    return {key for key, _ in roster_workers(await read_body(con, "roster", site_id))}


def worker(n: int, **over: str) -> dict[str, str]:
    fields = {"id_type": "RIC", "id_number": ric(n), "name": "张三明", "employer": "一建",
              "trade": "木工"}  # fmt: skip
    fields.update(over)
    return fields


async def test_add_and_expire_move_the_roster_bundle(sites: asyncpg.Connection) -> None:
    """add: the key is HMAC(pepper, RIC:<number>), name and number stored masked, the roster
    version bumped and the worker in the site's bundle (not another site's); expire: tombstone,
    version bumped again, out of the bundle; both audited."""
    con = sites
    before = await roster_version(con)
    checked = check_worker(worker(1, card_number="A1B2C3D4"), pepper=PEPPER, today=TODAY)
    version = await add_worker(con, MINE, SITE, checked, actor="mgr-a")
    assert version == before + 1
    key = person_key(PEPPER, "RIC", ric(1))
    rows = await roster(con, MINE, RosterParams(site_id=SITE))
    assert [(r.person_key, r.masked_name, r.masked_number, r.employer, r.trade, r.card_number)
            for r in rows] == [(key, "张*明", "310***********" + ric(1)[-4:], "一建", "木工",
                                "****C3D4")]  # fmt: skip
    stored = await con.fetchrow("SELECT * FROM workers WHERE person_key = $1", key)
    assert ric(1) not in str(dict(stored)) and "张三明" not in str(dict(stored))
    assert await bundle_keys(con) == {key}
    assert await bundle_keys(con, OTHER) == set()

    assert await expire_worker(con, MINE, SITE, key, actor="mgr-a") == before + 2
    assert await bundle_keys(con) == set()
    assert await roster(con, MINE, RosterParams(site_id=SITE)) == ()
    gone = await roster(con, MINE, RosterParams(site_id=SITE, include_expired=True))
    assert gone[0].expired and gone[0].removed_by == "mgr-a"
    with pytest.raises(NotFound):  # already expired
        await expire_worker(con, MINE, SITE, key, actor="mgr-a")
    actions = await con.fetch("SELECT actor, action, person_key FROM audit ORDER BY audit_id")
    assert [(a["action"], a["person_key"]) for a in actions] == [
        ("roster_add", key), ("roster_expire", key),
    ]  # fmt: skip
    assert await roster_version(con) == before + 2


async def test_scope_and_kind(sites: asyncpg.Connection) -> None:
    """Another site, an unknown site and a hotel: NotFound for every read and change, and the
    roster version does not move."""
    con = sites
    before = await roster_version(con)
    checked = check_worker(worker(1), pepper=PEPPER, today=TODAY)
    for site in (OTHER, "nope", "hotel-1"):
        scope = Scope.sites([SITE, "hotel-1"])
        with pytest.raises(NotFound):
            await add_worker(con, scope, site, checked, actor="x")
        with pytest.raises(NotFound):
            await expire_worker(con, scope, site, checked.person_key, actor="x")
        with pytest.raises(NotFound):
            await import_roster(con, scope, site, b"name,employer,id_number\n", pepper=PEPPER,
                                today=TODAY, actor="x")  # fmt: skip
        for query, params in (
            (roster, RosterParams(site_id=site)),
            (attendance, AttendanceParams(site_id=site)),
            (muster, MusterParams(site_id=site)),
        ):
            with pytest.raises(NotFound):
                await query(con, scope, params)  # type: ignore[operator]
    assert await roster_version(con) == before
    with pytest.raises(BadRequest):
        RosterParams(site_id="x" * 65)
    with pytest.raises(BadRequest):
        MusterParams(site_id=SITE, window_hours=1000)


def test_worker_fields_are_checked() -> None:
    """Each bad field is named: a wrong check digit, a type that does not match the number, a
    passport without nationality, no pepper, a bad date, a control character, both key and
    document, an overlong employer."""
    bad_digit = ric(1)[:-1] + ("0" if ric(1)[-1] != "0" else "1")
    cases = [
        (worker(1, id_number=bad_digit), "id_number"),
        (worker(1, id_type="HMT"), "id_type"),
        (worker(1, id_type="PP", id_number="E12345678"), "nationality"),
        (worker(1, id_type="XX"), "id_type"),
        (worker(1, valid_from="2026-13-01"), "valid_from"),
        (worker(1, valid_from="2026-05-02", valid_until="2026-05-01"), "valid_until"),
        (worker(1, name="张\x00明"), "name"),
        (worker(1, name=""), "name"),
        (worker(1, person_key=person(1)), "person_key"),
        (worker(1, employer="e" * 129), "employer"),
        (worker(1, card_number="12 34"), "card_number"),
        ({"person_key": "ab", "name": "a", "employer": "b"}, "person_key"),
    ]
    for fields, field in cases:
        with pytest.raises(RosterInputError) as caught:
            check_worker(fields, pepper=PEPPER, today=TODAY)
        assert caught.value.field == field, (fields, caught.value)
    with pytest.raises(RosterInputError) as caught:
        check_worker(worker(1), pepper=None, today=TODAY)
    assert caught.value.field == "id_number"
    by_key = check_worker({"person_key": person(1), "name": "SMITH", "employer": "x"},
                          pepper=None, today=TODAY)  # fmt: skip
    assert by_key.person_key == person(1) and by_key.masked_name == "S****"
    passport = check_worker(worker(1, id_type="PP", id_number="e1234567", nationality="gbr"),
                            pepper=PEPPER, today=TODAY)  # fmt: skip
    assert passport.person_key == person_key(PEPPER, "PP", "E1234567", "GBR")


async def test_csv_import_takes_good_rows_and_names_bad_ones(sites: asyncpg.Connection) -> None:
    """A GB 18030 file with 5 data rows, 3 bad (check digit, missing name, a repeat of row 2):
    the 2 good ones in, one version bump, each bad row reported with its spreadsheet row number
    and field, and none of them written, not even in part."""
    con = sites
    before = await roster_version(con)
    bad_digit = ric(3)[:-1] + ("0" if ric(3)[-1] != "0" else "1")
    text = (
        "id_type,id_number,name,employer,trade,valid_until\r\n"
        f"RIC,{ric(2)},李四,一建,电工,2026-12-31\r\n"
        f"RIC,{bad_digit},王五,一建,电工,\r\n"
        f",{ric(4)},,二建,焊工,\r\n"
        "\r\n"
        f"RIC,{ric(2)},李四,一建,电工,\r\n"
        f"RIC,{ric(5)},赵六,二建,焊工,\r\n"
    )
    result = await import_roster(con, MINE, SITE, text.encode("gb18030"), pepper=PEPPER,
                                 today=TODAY, actor="mgr-a")  # fmt: skip
    assert result.imported == 2 and result.version == before + 1
    assert [(e.row, e.field) for e in result.errors] == [
        (3, "id_number"), (4, "name"), (6, "id_number"),
    ]  # fmt: skip
    assert result.errors[2].detail == "2"  # the same person as row 2
    keys = {person_key(PEPPER, "RIC", ric(n)) for n in (2, 5)}
    assert {r.person_key for r in await roster(con, MINE, RosterParams(site_id=SITE))} == keys
    assert await bundle_keys(con) == keys
    assert await roster_version(con) == before + 1
    rows = await roster(con, MINE, RosterParams(site_id=SITE))
    assert {(r.masked_name, r.trade, r.valid_until) for r in rows} == {
        ("李*", "电工", dt.date(2026, 12, 31)), ("赵*", "焊工", None),
    }  # fmt: skip


async def test_csv_import_refusals(sites: asyncpg.Connection) -> None:
    """An unknown column or a missing one refuses the file at row 1 and writes nothing; a file
    of only bad rows writes nothing and bumps nothing; too many rows, too many bytes, binary
    data: 4xx. A UTF-8 file with a BOM and a formula-looking name imports as text."""
    con = sites
    before = await roster_version(con)

    async def run(data: bytes):  # type: ignore[no-untyped-def]
        return await import_roster(con, MINE, SITE, data, pepper=PEPPER, today=TODAY, actor="m")

    unknown = await run(b"id_number,name,employer,salary\n1,a,b,c\n")
    assert [(e.row, e.field) for e in unknown.errors] == [(1, "salary")] and unknown.version is None
    missing = await run(b"id_number,name\n")
    assert missing.errors[0].row == 1
    all_bad = await run(b"id_number,name,employer\n123,a,b\n")
    assert all_bad.imported == 0 and [(e.row, e.field) for e in all_bad.errors] == [
        (2, "id_number")
    ]
    short = await run(b"id_number,name,employer\n" + ric(7).encode() + b",a\n")
    assert short.errors[0].row == 2
    with pytest.raises(PayloadTooLarge):
        await run(b"person_key,name,employer\n" + (person(1) + ",a,b\n").encode() * (MAX_ROWS + 1))
    with pytest.raises(PayloadTooLarge):
        await run(b"x" * (1 << 20 | 1))
    with pytest.raises(BadRequest):
        await run(b"\x00\x01\x02")
    with pytest.raises(BadRequest):
        await run(b"")
    assert await roster_version(con) == before
    assert await con.fetchval("SELECT count(*) FROM workers") == 0

    bom = "\ufeffid_number,name,employer\n" + f"{ric(8)},=HYPERLINK(1),二建\n"
    result = await run(bom.encode("utf-8"))
    assert result.imported == 1 and result.errors == ()
    assert (await roster(con, MINE, RosterParams(site_id=SITE)))[0].masked_name.startswith("=")


def key_of(n: int) -> str:
    return hashlib.sha256(f"worker-{n}".encode()).hexdigest()


async def scan(
    con: asyncpg.Connection,
    seq: int,
    ts: dt.datetime,
    n: int,
    direction: str,
    *,
    verdict: str = "allow",
    site_id: str = SITE,
    passed: bool | None = None,
) -> None:
    """A scan at the site's gate (and, when ``passed`` is given, its passage outcome)."""
    gateway = "gw-a" if site_id == SITE else "gw-b"
    await con.execute(
        """
        INSERT INTO scans (gateway_id, seq, ts, site_id, lane_id, direction, format, verdict,
                           reason, person_key, masked_name)
        VALUES ($1, $2, $3, $4, 'gate', $5, 'SSC1', $6, $7, $8, $9)
        """,
        gateway, seq, ts, site_id, direction, verdict,
        None if verdict == "allow" else "not_registered", key_of(n), f"W{n}*",
    )  # fmt: skip
    if passed is not None:
        await con.execute(
            """
            INSERT INTO passages (gateway_id, seq, ts, site_id, lane_id, scan_seq, outcome,
                                  person_key, direction)
            VALUES ($1, $2, $3, $4, 'gate', $5, $6, $7, $8)
            """,
            gateway, seq + 100000, ts + dt.timedelta(seconds=2), site_id, seq,
            "passed" if passed else "not_passed", key_of(n), direction,
        )  # fmt: skip


async def test_attendance_and_muster_known_answers(sites: asyncpg.Connection) -> None:
    """Five registered workers and one stranger over the site's day (Shanghai, now = 14:00):
    hours are the sum of in->out spans, an open 'in' counts until now, an 'in' after an 'in'
    counts nothing, a denied scan or a not_passed gate counts nothing, yesterday (local) and
    another site are out; the muster list is who is inside now, by employer and trade."""
    con = sites
    day_start = dt.datetime.combine(TODAY, dt.time(0, 0), tzinfo=dt.UTC) - dt.timedelta(hours=8)
    for n, employer, trade in ((1, "一建", "木工"), (2, "一建", "电工"), (3, "二建", "焊工"),
                               (4, "二建", "焊工"), (5, "一建", "木工")):  # fmt: skip
        await add_worker(con, MINE, SITE, check_worker(
            {"person_key": key_of(n), "name": f"工人{n}", "employer": employer, "trade": trade},
            pepper=None, today=TODAY), actor="m")  # fmt: skip
    at = day_start + dt.timedelta(hours=8)  # 08:00 local
    # 1: 08:00 in, 12:00 out, 13:00 in (still in): 4 h + 1 h = 300 min; inside
    await scan(con, 1, at, 1, "in", passed=True)
    await scan(con, 2, at + 240 * M, 1, "out")
    await scan(con, 3, at + 300 * M, 1, "in")
    # 2: 08:30 in, 09:00 in again (missed out), 10:00 out: 60 min; out
    await scan(con, 4, at + 30 * M, 2, "in")
    await scan(con, 5, at + 60 * M, 2, "in")
    await scan(con, 6, at + 120 * M, 2, "out")
    # 3: denied in, then an in whose gate said not_passed: nothing; not inside
    await scan(con, 7, at, 3, "in", verdict="deny")
    await scan(con, 8, at + M, 3, "in", passed=False)
    # 4: came in yesterday 23:00 local (before the day), left 07:00 today: no first in,
    #    last out 07:00, 0 min today; muster: out
    await scan(con, 9, day_start - 60 * M, 4, "in")
    await scan(con, 10, at - 60 * M, 4, "out")
    # 5: in at 13:50 at the other site only
    await scan(con, 11, at + 350 * M, 5, "in", site_id=OTHER)
    # 6: a stranger let in at 09:00 (not on the roster)
    await scan(con, 12, at + 60 * M, 6, "in")
    # later than "now": ignored
    await scan(con, 13, NOW + 5 * M, 2, "in")

    rows = await attendance(con, MINE, AttendanceParams(site_id=SITE, now=NOW))
    got = {r.person_key: (r.first_in, r.last_out, r.minutes, r.inside, r.registered)
           for r in rows}  # fmt: skip
    assert got == {
        key_of(1): (at, at + 240 * M, 300, True, True),
        key_of(2): (at + 30 * M, at + 120 * M, 60, False, True),
        key_of(3): (None, None, 0, False, True),
        key_of(4): (None, at - 60 * M, 0, False, True),
        key_of(5): (None, None, 0, False, True),
        key_of(6): (at + 60 * M, None, 300, True, False),
    }
    assert [r.person_key for r in rows][-1] == key_of(6)  # strangers after the roster
    assert rows[0].hours in {"5:00", "1:00", "0:00"}

    present = await muster(con, MINE, MusterParams(site_id=SITE, now=NOW))
    assert [(r.employer, r.trade, r.person_key, r.registered) for r in present] == [
        ("", "", key_of(6), False),
        ("一建", "木工", key_of(1), True),
    ]
    assert present[1].masked_name == "工*1" and present[1].in_since == at + 300 * M
    assert [(e, t, len(p)) for e, t, p in muster_groups(present)] == [
        ("", "", 1),
        ("一建", "木工", 1),
    ]
    # With a 1 h window, person 4's "in" yesterday is out of sight either way; person 1's last
    # passage (13:00 in) is 1 h before now: still there.
    narrow = await muster(con, MINE, MusterParams(site_id=SITE, now=NOW, window_hours=1))
    assert [r.person_key for r in narrow] == [key_of(1)]
    # Yesterday (local): person 4's 23:00 in, open until the day's end: 60 min.
    before = await attendance(
        con, MINE, AttendanceParams(site_id=SITE, day=TODAY - dt.timedelta(days=1), now=NOW)
    )
    assert {r.person_key: r.minutes for r in before if r.minutes} == {key_of(4): 60}


def roster_messages() -> set[str]:
    """The fixed messages store/workers.py raises or reports (second argument of
    RosterInputError, ``message=`` of RowError)."""
    tree = ast.parse(Path(workers.__file__).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        values = []
        if node.func.id == "RosterInputError" and len(node.args) >= 2:
            values.append(node.args[1])
        if node.func.id == "RowError":
            values.extend(k.value for k in node.keywords if k.arg == "message")
        found.update(v.value for v in values if isinstance(v, ast.Constant))
    return found


def test_every_roster_message_has_a_zh_translation() -> None:
    """The roster page shows each field or row error through _(): each has a zh text."""
    messages = roster_messages()
    assert "not a valid ID number" in messages and "unknown column" in messages
    zh = i18n.load_catalogs()["zh"]
    assert sorted(m for m in messages if m not in zh) == []


def test_site_page_catalogs_agree_with_the_other_areas() -> None:
    """A msgid in the hotel, construction or analyst catalog that another area's catalog also
    translates has the same text there (the loader merges them: one would silently win)."""
    folder = i18n.LOCALE_DIR / "zh" / "LC_MESSAGES"
    catalogs = {}
    for path in sorted(folder.glob("*.po")):
        with path.open("rb") as handle:
            catalogs[path.stem] = {m.id: m.string for m in read_po(handle, locale="zh") if m.id}
    clashes = [
        (mine, other, msgid)
        for mine in ("hotel", "construction", "analyst")
        for other, texts in catalogs.items()
        if other != mine
        for msgid, text in catalogs[mine].items()
        if msgid in texts and texts[msgid] != text
    ]
    assert clashes == []
