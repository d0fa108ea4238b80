"""`suishen hub webhook set|list` and `suishen hub alerts key-site` against a real database:
what they store, and the refusals (a secret file others can read, a short secret, a bad URL,
an unknown site) exit 2 with nothing stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from suishen.cli import main
from tests.central.hubkit import SITE, register

from .kit import secret_file


async def _cli(*argv: str) -> int:
    """main() in a worker thread (the CLI runs its own event loop); argparse's refusal of an
    argument is its exit status."""

    def run() -> int:
        try:
            return main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)

    return await asyncio.to_thread(run)


async def test_webhook_set_and_list(
    cli_dsn: str, con: asyncpg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """set stores URL, the secret file's absolute path (not the secret) and enabled; list
    prints them; set again replaces; --disabled keeps the endpoint but switches it off."""
    path, secret = secret_file(tmp_path, "police")
    url = "https://police.example.test/hook"
    assert await _cli("hub", "webhook", "set", "police", url, "--secret-file", str(path),
                      "--dsn", cli_dsn) == 0  # fmt: skip
    row = await con.fetchrow("SELECT * FROM webhook_endpoints")
    assert (row["route"], row["url"], row["secret_file"], row["enabled"]) == (
        "police",
        url,
        str(path.resolve()),
        True,
    )
    assert secret.decode() not in str(dict(row))
    assert await _cli("hub", "webhook", "set", "police", url, "--secret-file", str(path),
                      "--disabled", "--dsn", cli_dsn) == 0  # fmt: skip
    assert await con.fetchval("SELECT enabled FROM webhook_endpoints") is False
    capsys.readouterr()
    assert await _cli("hub", "webhook", "list", "--dsn", cli_dsn) == 0
    assert f"police\tno\t{url}" in capsys.readouterr().out


async def test_webhook_set_refuses_unusable_secrets_and_urls(
    cli_dsn: str, con: asyncpg.Connection, tmp_path: Path
) -> None:
    """A secret file readable by others, a secret under 16 bytes, a missing file, a non-HTTP
    URL, an unknown route: exit 2, nothing stored."""
    readable, _ = secret_file(tmp_path, "open")
    readable.chmod(0o644)
    short = tmp_path / "short.secret"
    short.write_text("tiny\n")
    short.chmod(0o600)
    good, _ = secret_file(tmp_path, "good")
    for route, url, path in (
        ("police", "https://a.test/", readable),
        ("police", "https://a.test/", short),
        ("police", "https://a.test/", tmp_path / "missing"),
        ("police", "ftp://a.test/", good),
        ("police", "javascript:alert(1)", good),
        ("army", "https://a.test/", good),
    ):
        code = await _cli("hub", "webhook", "set", route, url, "--secret-file", str(path),
                          "--dsn", cli_dsn)  # fmt: skip
        assert code == 2, (route, url, path)
    assert await con.fetchval("SELECT count(*) FROM webhook_endpoints") == 0


async def test_alerts_key_site(cli_dsn: str, con: asyncpg.Connection) -> None:
    """key-site sets the flag, --off clears it, an unknown site exits 2."""
    await register(con, "gw-a", SITE)
    assert await _cli("hub", "alerts", "key-site", SITE, "--dsn", cli_dsn) == 0
    assert await con.fetchval("SELECT key_site FROM sites WHERE site_id = $1", SITE) is True
    assert await _cli("hub", "alerts", "key-site", SITE, "--off", "--dsn", cli_dsn) == 0
    assert await con.fetchval("SELECT key_site FROM sites WHERE site_id = $1", SITE) is False
    assert await _cli("hub", "alerts", "key-site", "nowhere", "--dsn", cli_dsn) == 2
