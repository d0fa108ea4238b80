"""Every string a template translates has a Chinese translation in some area's .po file
(web/locale/zh/LC_MESSAGES/*.po), so a page never shows English to a zh user by omission."""

from __future__ import annotations

from pathlib import Path

import jinja2
from jinja2.ext import extract_from_ast

from suishen.central.web import app as web_app_module
from suishen.central.web import i18n


def template_msgids() -> dict[str, set[str]]:
    env = jinja2.Environment(autoescape=True)
    found: dict[str, set[str]] = {}
    for path in sorted(web_app_module.TEMPLATES_DIR.rglob("*.html")):
        tree = env.parse(path.read_text(encoding="utf-8"))
        for _lineno, _func, message in extract_from_ast(tree, gettext_functions=("_",)):
            if isinstance(message, str):
                found.setdefault(message, set()).add(path.name)
    return found


def test_every_template_msgid_has_a_zh_translation() -> None:
    """Fails listing each msgid (and its templates) that no zh catalog translates."""
    msgids = template_msgids()
    assert "Log in" in msgids  # the extractor sees the templates
    zh = i18n.load_catalogs()["zh"]
    missing = {msgid: sorted(where) for msgid, where in msgids.items() if msgid not in zh}
    assert not missing, missing


def test_catalogs_merge_every_area_file(tmp_path: Path) -> None:
    """load_catalogs reads every .po file in the folder (one per area) and merges them."""
    folder = tmp_path / "zh" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    for area, (msgid, text) in {"a": ("One", "一"), "b": ("Two", "二")}.items():
        (folder / f"{area}.po").write_text(
            f'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
            f'msgid "{msgid}"\nmsgstr "{text}"\n',
            encoding="utf-8",
        )
    catalogs = i18n.load_catalogs(tmp_path)
    assert dict(catalogs["zh"]) == {"One": "一", "Two": "二"}
    assert dict(catalogs["en"]) == {}


def test_vocabulary_shown_on_pages_is_translated() -> None:
    """Values pages show through _(value) (verdicts, reasons, directions, site kinds, lists)
    have zh translations too: the template extractor cannot see them."""
    from suishen.protocol.reasons import Reason  # noqa: PLC0415
    from suishen.protocol.vocabulary import BundleKind, Direction, Role, SiteKind, Verdict  # noqa: PLC0415

    zh = i18n.load_catalogs()["zh"]
    values = {m.value for enum in (Reason, Verdict, Direction, SiteKind, BundleKind, Role)
              for m in enum}  # fmt: skip
    assert sorted(v for v in values if v not in zh) == []
