"""central/store/users.py: argon2id hashes, rehash on login, grants (issue 10 item 1)."""

from __future__ import annotations

import asyncpg
import pytest
from argon2 import PasswordHasher

from suishen.central.store import users
from suishen.protocol.vocabulary import Role

from .conftest import PASSWORD, TEST_HASHER


async def test_hash_is_argon2id_and_rehashed_on_login(db_pool: asyncpg.Pool) -> None:
    """A hash made with weaker parameters is argon2id and replaced at the next good login by
    one with the current parameters; a wrong password changes nothing."""
    strong = PasswordHasher(time_cost=2, memory_cost=16384, parallelism=1)
    async with db_pool.acquire() as con:
        await users.add_user(con, "u", role=Role.ANALYST, password=PASSWORD, hasher=TEST_HASHER)
        before = await con.fetchval("SELECT password_hash FROM users")
        assert before.startswith("$argon2id$")
        assert await users.authenticate(con, "u", "wrong-password", hasher=strong) is None
        assert await con.fetchval("SELECT password_hash FROM users") == before
        user = await users.authenticate(con, "u", PASSWORD, hasher=strong)
        assert user is not None and user.role is Role.ANALYST
        after = await con.fetchval("SELECT password_hash FROM users")
    assert after != before and not strong.check_needs_rehash(after)


async def test_users_grants_and_errors(db_pool: asyncpg.Pool) -> None:
    """Duplicate names, unknown sites, short passwords are UserChangeError; grants show in
    list_users; a password change ends the user's sessions; a disabled user cannot log in."""
    async with db_pool.acquire() as con:
        await con.execute("INSERT INTO sites (site_id, kind) VALUES ('s1', 'hotel')")
        user_id = await users.add_user(
            con, "t", role=Role.TENANT, password=PASSWORD, hasher=TEST_HASHER
        )
        with pytest.raises(users.UserChangeError):
            await users.add_user(con, "t", role=Role.TENANT, password=PASSWORD)
        with pytest.raises(users.UserChangeError):
            await users.add_user(con, "short", role=Role.TENANT, password="x")
        with pytest.raises(users.UserChangeError):
            await users.grant_site(con, "t", "no-such-site")
        assert await users.grant_site(con, "t", "s1") is True
        assert await users.grant_site(con, "t", "s1") is False
        (listed,) = await users.list_users(con)
        assert listed.site_ids == frozenset({"s1"}) and listed.role is Role.TENANT
        await users.create_session(con, user_id, lifetime_s=60)
        await users.set_password(con, "t", "another password", hasher=TEST_HASHER)
        assert await con.fetchval("SELECT count(*) FROM sessions") == 0
        await con.execute("UPDATE users SET disabled = true")
        assert await users.authenticate(con, "t", "another password", hasher=TEST_HASHER) is None
