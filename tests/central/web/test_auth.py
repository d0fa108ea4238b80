"""Accounts, sessions, CSRF, Origin checks and login throttling of the web listener (issue 10
item 1), against the real web app on the embedded PostgreSQL."""

from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from suishen.central import auth
from suishen.central.store import users
from suishen.protocol.vocabulary import Role

from .conftest import PASSWORD, WebClientFactory, make_user


def _origin(client: TestClient) -> dict[str, str]:
    return {"Origin": str(client.make_url("/").origin())}


async def _login(client: TestClient, username: str, password: str, **headers: str):
    return await client.post(
        "/login",
        data={"username": username, "password": password, "next": "/site"},
        headers={**_origin(client), **headers},
        allow_redirects=False,
    )


async def test_anonymous_browser_is_sent_to_login(anon_client: TestClient) -> None:
    """Without a session a page redirects to /login?next=<page>; a POST and /api/ get 401."""
    response = await anon_client.get("/", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login?next=/"
    response = await anon_client.post("/logout", headers=_origin(anon_client))
    assert response.status == 401
    response = await anon_client.get("/api/v1/anything", allow_redirects=False)
    assert response.status in (401, 404)


async def test_login_sets_a_strict_httponly_cookie_and_logout_ends_it(
    anon_client: TestClient, db_pool: asyncpg.Pool
) -> None:
    """The right password makes a server-side session: the cookie is HttpOnly and
    SameSite=Strict and only its hash is stored; logout (with the CSRF token) deletes it."""
    await make_user(db_pool, "ana", Role.ANALYST)
    response = await _login(anon_client, "ana", PASSWORD)
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/site"
    cookie = response.cookies[auth.SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    token = cookie.value
    async with db_pool.acquire() as con:
        stored = await con.fetch("SELECT token_sha256, csrf_secret FROM sessions")
    assert [r["token_sha256"] for r in stored] == [users.token_sha256(token)]
    assert token not in str(stored[0])
    page = await anon_client.get("/", allow_redirects=False)
    assert (page.status, page.headers["Location"]) == (303, "/site")
    refused = await anon_client.post("/logout", headers=_origin(anon_client))
    assert refused.status == 403
    csrf = stored[0]["csrf_secret"]
    done = await anon_client.post(
        "/logout", data={"csrf_token": csrf}, headers=_origin(anon_client), allow_redirects=False
    )
    assert done.status == 303
    async with db_pool.acquire() as con:
        assert await con.fetchval("SELECT count(*) FROM sessions") == 0
    page = await anon_client.get("/", allow_redirects=False)
    assert page.headers["Location"].startswith("/login")


async def test_wrong_password_is_refused_and_throttled(
    anon_client: TestClient, db_pool: asyncpg.Pool
) -> None:
    """Five wrong passwords lock the username: the sixth attempt, even with the right
    password, is refused (429) without a session; login_locked is logged with the username and
    never the password."""
    await make_user(db_pool, "sm", Role.SITE_MANAGER)
    with capture_logs() as logs:
        for _ in range(5):
            response = await _login(anon_client, "sm", "wrong-password-123")
            assert response.status == 401
        response = await _login(anon_client, "sm", PASSWORD)
    assert response.status == 429
    assert auth.SESSION_COOKIE not in response.cookies
    assert "登录失败次数过多" in await response.text()
    locked = [entry for entry in logs if entry["event"] == "login_locked"]
    assert locked and all(entry["username"] == "sm" for entry in locked)
    assert "wrong-password-123" not in repr(logs) and PASSWORD not in repr(logs)
    async with db_pool.acquire() as con:
        assert await con.fetchval("SELECT count(*) FROM sessions") == 0


async def test_address_throttle_spans_usernames(
    anon_client: TestClient, db_pool: asyncpg.Pool
) -> None:
    """Failures from one address against many usernames lock the address too (20 by
    default): a real user logging in from that address is then refused."""
    await make_user(db_pool, "victim", Role.ANALYST)
    for n in range(20):
        response = await _login(anon_client, f"guess-{n}", "nope-nope-nope")
        assert response.status == 401
    response = await _login(anon_client, "victim", PASSWORD)
    assert response.status == 429


async def test_login_from_another_origin_is_refused(
    anon_client: TestClient, db_pool: asyncpg.Pool
) -> None:
    """A login form posted from another site (Origin mismatch) is 403 and makes no session."""
    await make_user(db_pool, "ana", Role.ANALYST)
    response = await anon_client.post(
        "/login",
        data={"username": "ana", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert response.status == 403
    async with db_pool.acquire() as con:
        assert await con.fetchval("SELECT count(*) FROM sessions") == 0


async def test_login_rejects_bad_shapes(anon_client: TestClient) -> None:
    """JSON instead of a form, a missing, repeated or overlong field: 400, never 500."""
    cases = [
        {"json": {"username": "a", "password": "b"}},
        {"data": {"username": "a"}},
        {"data": [("username", "a"), ("username", "b"), ("password", "x")]},
        {"data": {"username": "a" * 5000, "password": "x"}},
    ]
    for case in cases:
        response = await anon_client.post("/login", headers=_origin(anon_client), **case)
        assert response.status == 400, case


async def test_csrf_and_origin_are_checked_on_every_unsafe_request(
    web_client: WebClientFactory, db_pool: asyncpg.Pool
) -> None:
    """A cookie session's POST needs the CSRF token (field or header) and our Origin: forged
    or missing token, a foreign Origin, or no Origin/Referer at all are 403 and the session
    stays; the right ones log out."""
    wc = await web_client(Role.ADMIN)
    client = wc.client
    bad = [
        ({"csrf_token": "forged"}, wc.unsafe_headers()),
        ({}, wc.unsafe_headers()),
        ({"csrf_token": wc.csrf}, {"Origin": "http://evil.example"}),
        ({"csrf_token": wc.csrf}, {"Referer": "http://evil.example/page"}),
        ({"csrf_token": wc.csrf}, {}),
        ({}, wc.unsafe_headers(**{"X-CSRF-Token": wc.csrf + "x"})),
    ]
    for data, headers in bad:
        response = await client.post(
            "/logout", data=data, headers=headers, skip_auto_headers=["Origin"]
        )
        assert response.status == 403, (data, headers)
        async with db_pool.acquire() as con:
            assert await con.fetchval("SELECT count(*) FROM sessions") == 1
    response = await client.post(
        "/logout",
        headers={"Referer": wc.origin + "/site", "X-CSRF-Token": wc.csrf},
        allow_redirects=False,
    )
    assert response.status == 303
    async with db_pool.acquire() as con:
        assert await con.fetchval("SELECT count(*) FROM sessions") == 0


async def test_idle_and_expired_sessions_end(
    web_client: WebClientFactory, db_pool: asyncpg.Pool
) -> None:
    """A session unused for longer than session_idle_s, or past its expiry, logs nobody in."""
    wc = await web_client(Role.ANALYST)
    assert (await wc.client.get("/", allow_redirects=False)).headers["Location"] == "/site"
    async with db_pool.acquire() as con:
        await con.execute("UPDATE sessions SET last_seen_at = now() - interval '31 minutes'")
    response = await wc.client.get("/", allow_redirects=False)
    assert response.headers["Location"].startswith("/login")
    wc2 = await web_client(Role.ANALYST)
    async with db_pool.acquire() as con:
        await con.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
    response = await wc2.client.get("/", allow_redirects=False)
    assert response.headers["Location"].startswith("/login")


async def test_bearer_tokens(anon_client: TestClient, db_pool: asyncpg.Pool) -> None:
    """A bearer token from create_token authenticates without CSRF; an unknown, revoked or
    malformed one is 401."""
    await make_user(db_pool, "api", Role.ANALYST)
    async with db_pool.acquire() as con:
        token = await users.create_token(con, "api", label="test")
        stored = await con.fetchval("SELECT token_sha256 FROM api_tokens")
    assert stored == users.token_sha256(token)
    ok = await anon_client.get(
        "/", headers={"Authorization": f"Bearer {token}"}, allow_redirects=False
    )
    assert (ok.status, ok.headers["Location"]) == (303, "/site")
    for header in (f"Bearer {token}x", "Basic abc", "Bearer ", "Bearer " + "a" * 500):
        response = await anon_client.get(
            "/", headers={"Authorization": header}, allow_redirects=False
        )
        assert response.status == 401, header
    async with db_pool.acquire() as con:
        await con.execute("UPDATE api_tokens SET revoked_at = now()")
    response = await anon_client.get("/", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401


async def test_security_headers_on_every_response(anon_client: TestClient) -> None:
    """Pages, errors and static files carry the strict CSP and the other security headers."""
    for path in ("/login", "/static/app.css", "/no-such-page", "/lang?to=xx"):
        response = await anon_client.get(path, allow_redirects=False)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_language_switch(anon_client: TestClient) -> None:
    """Chinese by default; /lang?to=en switches to English by cookie and only redirects to a
    local path."""
    page = await anon_client.get("/login")
    assert "登录" in await page.text()
    switch = await anon_client.get("/lang?to=en&next=//evil.example/x", allow_redirects=False)
    assert switch.headers["Location"] == "/site"
    page = await anon_client.get("/login")
    text = await page.text()
    assert "Log in" in text and "登录" not in text


async def test_a_tenant_lands_on_its_visitors_not_on_site_pages(
    anon_client: TestClient, db_pool: asyncpg.Pool
) -> None:
    """A tenant may not see site pages (403), so its login and "/" lead to /visitors, and
    its top bar has no Sites link; a page it asked for explicitly is still where it goes."""
    await make_user(db_pool, "acme", Role.TENANT, ("tower-a",))
    response = await _login(anon_client, "acme", PASSWORD)
    assert (response.status, response.headers["Location"]) == (303, "/visitors")
    page = await anon_client.get("/", allow_redirects=False)
    assert (page.status, page.headers["Location"]) == (303, "/visitors")
    visitors = await anon_client.get("/visitors")
    assert visitors.status == 200
    assert 'href="/site"' not in await visitors.text()
    asked = await anon_client.post(
        "/login",
        data={"username": "acme", "password": PASSWORD, "next": "/visitors/new"},
        headers=_origin(anon_client),
        allow_redirects=False,
    )
    assert asked.headers["Location"] == "/visitors/new"
