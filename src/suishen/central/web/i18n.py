"""Languages of the web UI: Chinese by default, English by a switch (DESIGN §7).

Source strings (msgids) are English, written in templates as ``{{ _("...") }}`` (or
``_("... %(n)s", n=3)``) and in Python with ``translate(lang, "...")``.  Catalogs are gettext
.po files, ONE PER AREA, under ``locale/<lang>/LC_MESSAGES/<area>.po``; every one found is read
at start with babel.messages.pofile and merged.  English needs no catalog: a msgid is its own
English text.  The language is the ``lang`` cookie (``zh`` or ``en``), else ``zh``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from aiohttp import web
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
LANG_COOKIE = "lang"

Catalogs = Mapping[str, Mapping[str, str]]


def load_catalogs(locale_dir: Path = LOCALE_DIR) -> Catalogs:
    """{language: {msgid: translation}} from every .po file under ``locale_dir``."""
    catalogs: dict[str, Mapping[str, str]] = {}
    for lang in LANGUAGES:
        merged: dict[str, str] = {}
        for path in sorted((locale_dir / lang / "LC_MESSAGES").glob("*.po")):
            with path.open("rb") as handle:
                catalog = read_po(handle, locale=lang)
            for message in catalog:
                if message.id and isinstance(message.id, str) and message.string:
                    merged[message.id] = str(message.string)
        catalogs[lang] = MappingProxyType(merged)
    return MappingProxyType(catalogs)


CATALOGS: Catalogs = load_catalogs()


def translate(lang: str, msgid: str, /, **values: Any) -> str:
    """``msgid`` in ``lang`` (itself when untranslated), %-formatted with ``values``."""
    text = CATALOGS.get(lang, {}).get(msgid, msgid)
    return text % values if values else text


def request_language(request: web.Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, DEFAULT_LANGUAGE)
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE
