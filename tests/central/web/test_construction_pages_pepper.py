"""Where the roster form gets the pepper when the web app is not handed one: from the hub's
own [privacy] settings through the analyst API's reader (on a hub that has it), else nowhere, and
then a document number is refused (400) and the form asks for a person key instead."""

from __future__ import annotations

import importlib.util

import asyncpg
import pytest

from suishen.protocol.person import person_key
from suishen.protocol.vocabulary import Role
from tests.central.hubkit import register
from tests.central.web.conftest import WebClientFactory
from tests.central.web.test_construction_queries import ric

HAS_ANALYST_API = importlib.util.find_spec("suishen.central.analyst_api") is not None
ENV_PEPPER = "e" * 32


async def test_the_roster_form_uses_the_hubs_pepper(
    web_client: WebClientFactory, db_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With $SUISHEN_PEPPER set (the [privacy] default) a document registers under
    HMAC(that pepper) where the hub has the analyst API; without that API the page offers the
    person-key field and refuses a document number with 400, writing nothing."""
    monkeypatch.setenv("SUISHEN_PEPPER", ENV_PEPPER)
    async with db_pool.acquire() as con:
        await register(con, "gw-a", "build-a", kind="construction")
    wc = await web_client(Role.SITE_MANAGER, ["build-a"])
    page = await (await wc.client.get("/construction/build-a")).text()
    form = {"csrf_token": wc.csrf, "id_type": "RIC", "id_number": ric(1), "name": "张三",
            "employer": "一建"}  # fmt: skip
    response = await wc.client.post(
        "/construction/build-a/workers", data=form, headers=wc.unsafe_headers(),
        allow_redirects=False,
    )  # fmt: skip
    async with db_pool.acquire() as con:
        keys = [r["person_key"] for r in await con.fetch("SELECT person_key FROM workers")]
    if HAS_ANALYST_API:
        assert 'name="id_number"' in page
        assert response.status == 303
        assert keys == [person_key(ENV_PEPPER.encode(), "RIC", ric(1))]
    else:
        assert 'name="id_number"' not in page and 'name="person_key"' in page
        assert response.status == 400 and keys == []
