"""Scope: which sites a caller may see, required by every central query function (DESIGN §7).

A site manager's pages and an analyst's queries call the same functions; the difference is the
Scope they pass, so site scoping is enforced where the SQL is written, not by convention in the
views. ``Scope.everywhere()`` is all sites (analysts, admins, the hub's own jobs);
``Scope.sites(...)`` is a fixed set (a site manager's grants). In SQL a scope is one array
parameter: ``($1::text[] IS NULL OR site_id = ANY($1::text[]))`` (``Scope.sql_param``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from suishen.central.errors import NotFound

SCOPE_SQL = "({param}::text[] IS NULL OR {column} = ANY({param}::text[]))"


@dataclass(frozen=True, slots=True)
class Scope:
    """All sites (site_ids None) or exactly these site ids (possibly none at all)."""

    site_ids: frozenset[str] | None

    @classmethod
    def everywhere(cls) -> Scope:
        return cls(None)

    @classmethod
    def sites(cls, site_ids: Iterable[str]) -> Scope:
        return cls(frozenset(site_ids))

    @property
    def is_everywhere(self) -> bool:
        return self.site_ids is None

    def allows(self, site_id: str) -> bool:
        return self.site_ids is None or site_id in self.site_ids

    def require(self, site_id: str) -> str:
        """The site id if in scope; else NotFound (an out-of-scope site is not confirmed)."""
        if not self.allows(site_id):
            raise NotFound(f"no site {site_id!r}", site_id=site_id)
        return site_id

    def sql_param(self) -> list[str] | None:
        """The value for the scope's array parameter (None: every site)."""
        return None if self.site_ids is None else sorted(self.site_ids)

    @staticmethod
    def sql(param: str, column: str = "site_id") -> str:
        """The WHERE clause for a scope bound at ``param`` (e.g. "$1") on ``column``."""
        return SCOPE_SQL.format(param=param, column=column)
