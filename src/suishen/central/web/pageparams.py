"""Request parameters of the site pages (hotel, construction, analyst): one value per name,
bounded, typed; anything else is BadRequest (400), never a crash and never SQL text.

Also the site-local time format the pages show (``LocalTime``), and the short outcome messages
a page shows after a POST-redirect-GET (``?done=<code>``, only codes known here are shown).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
from collections.abc import Mapping
from typing import Final

from aiohttp import web
from multidict import MultiMapping

from suishen.central.errors import BadRequest
from suishen.central.queries.sitekind import zone_of

MAX_QUERY_CHARS: Final = 200

#: The deployment pepper (document number -> person key) when given to the web app directly
#: (tests, embedding); else ``pepper_of`` reads the hub's own ([privacy] pepper_file or
#: pepper_env) through the analyst API's reader.  Pages that take a document number refuse it
#: when there is none.
PEPPER: web.AppKey[bytes] = web.AppKey("person_key_pepper", bytes)
_ANALYST_API: Final = "suishen.central.analyst_api"


def pepper_of(request: web.Request) -> bytes | None:
    """The deployment pepper: ``app[PEPPER]``, else the hub config's (read by the analyst API,
    one reader for every front door, when the hub has that API), else None."""
    pepper = request.app.get(PEPPER)
    if pepper is not None:
        return pepper
    try:
        api = importlib.import_module(_ANALYST_API)
    except ImportError:
        return None
    reader = getattr(api, "_pepper", None)
    found = reader(request) if callable(reader) else None
    return found if isinstance(found, bytes) else None


MAX_FIELD_CHARS: Final = 1024


def query_params(request: web.Request, names: tuple[str, ...]) -> dict[str, str]:
    """The non-empty query parameters among ``names``, one value each (see ``one_query``)."""
    found = {name: one_query(request, name) for name in names}
    return {name: value for name, value in found.items() if value}


def one_query(request: web.Request, name: str, *, limit: int = MAX_QUERY_CHARS) -> str | None:
    """The query parameter ``name`` (None when absent); BadRequest when repeated or too long."""
    values = request.query.getall(name, [])
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"{name} given more than once", field=name)
    if len(values[0]) > limit:
        raise BadRequest(f"{name} is too long", field=name)
    return values[0]


def query_day(request: web.Request, name: str = "day") -> dt.date | None:
    text = one_query(request, name)
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        day = None
    if day is None or len(text) != 10:
        raise BadRequest(f"{name} is a date YYYY-MM-DD", field=name)
    return day


def query_int(request: web.Request, name: str, default: int) -> int:
    text = one_query(request, name)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise BadRequest(f"{name} is a whole number", field=name)
    return int(text)


async def form_fields(
    request: web.Request, names: tuple[str, ...], *, files: tuple[str, ...] = ()
) -> tuple[dict[str, str], dict[str, bytes]]:
    """A posted form's text fields among ``names`` (absent ones '') and its uploaded files among
    ``files`` (their bytes); BadRequest for a repeated or overlong field, or a wrong shape."""
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise BadRequest("a form post is expected", field="content_type")
    posted: MultiMapping[object] = await request.post()
    text: dict[str, str] = {}
    uploads: dict[str, bytes] = {}
    for name in (*names, *files):
        values = posted.getall(name, [])
        if len(values) > 1:
            raise BadRequest(f"{name} given more than once", field=name)
        value = values[0] if values else ""
        if name in files:
            if isinstance(value, web.FileField):
                uploads[name] = value.file.read()
            elif value != "":
                raise BadRequest(f"{name} must be a file", field=name)
            continue
        if not isinstance(value, str):
            raise BadRequest(f"{name} must be text", field=name)
        if len(value) > MAX_FIELD_CHARS:
            raise BadRequest(f"{name} is too long", field=name)
        text[name] = value
    return text, uploads


@dataclasses.dataclass(frozen=True, slots=True)
class LocalTime:
    """Formats times at a site's time zone for its pages."""

    zone: dt.tzinfo

    @classmethod
    def of(cls, timezone: str) -> LocalTime:
        return cls(zone_of(timezone))

    def __call__(self, ts: dt.datetime | None, fmt: str = "%m-%d %H:%M") -> str:
        return "" if ts is None else ts.astimezone(self.zone).strftime(fmt)


def done_message(request: web.Request, messages: Mapping[str, str]) -> str | None:
    """The msgid of ``?done=<code>`` when ``code`` is one of ``messages`` (else None)."""
    code = request.query.get("done")
    return messages.get(code) if code else None
