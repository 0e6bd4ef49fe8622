"""The text a reader would see in a feed's title or author field: markup rendered, literal text kept.

A title can be plain text that happens to contain "<" (`#include </etc/shadow>`), escaped HTML
(`<i>X</i>'s`, which a reader sees as "X's"), or entities (`AT&amp;T`). Only real HTML
elements are treated as markup; anything else stays as written. Control characters from the
network never reach a terminal, a log or a page.
"""

from __future__ import annotations

import html
import re

from lxml import html as lxml_html

# HTML elements that appear in feed titles and bylines; a "tag" naming anything else (a path,
# a C header, an e-mail address in angle brackets) is text.
_HTML_TAG = re.compile(
    r"</?(?:a|abbr|b|big|blockquote|br|cite|code|del|dfn|div|em|font|h[1-6]|hr|i|img|ins|kbd|li|"
    r"mark|ol|p|q|s|samp|small|span|strike|strong|sub|sup|time|tt|u|ul|var|wbr|script|style)"
    r"(?:\s[^<>]*)?/?>", re.IGNORECASE)
_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# C0 and C1 controls but tab and newline, DEL, and the bidirectional overrides that can disguise text.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_BLOCK = {"br", "p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "hr", "ul", "ol"}


def strip_controls(value: str | None) -> str | None:
    """Network text made safe for a terminal or a log line."""
    return _CONTROL.sub("", value) if value else value


def _rendered(value: str) -> str:
    """An HTML fragment's text as a browser shows it: inline elements join their neighbours,
    block elements separate them, scripts and styles show nothing."""
    try:
        root = lxml_html.fragment_fromstring(value, create_parent="div")
    except (ValueError, TypeError):
        return html.unescape(_HTML_TAG.sub("", value))
    for el in list(root.iter("script", "style")):
        el.drop_tree()
    for el in root.iter(*_BLOCK):
        el.tail = " " + (el.tail or "")
        if el.tag != "br":
            el.text = " " + (el.text or "")
    return root.text_content()


def reader_text(value: str | None, markup: str = "guess", limit: int | None = None) -> str | None:
    """``markup``: "text" (literal, as Atom's type="text"), "html" (escaped HTML), or "guess"
    (RSS, which does not say): markup only where real HTML elements are present, entities
    decoded. Whitespace is collapsed; cut at ``limit`` characters with an ellipsis."""
    if not value:
        return None
    if limit:
        value = value[: limit * 4]  # markup included: enough for ``limit`` characters of text
    if markup == "html" or (markup == "guess" and _HTML_TAG.search(value)):
        value = _rendered(value)
    elif markup != "text" and "&" in value and _ENTITY.search(value):
        value = html.unescape(value)
    value = " ".join(strip_controls(value).split())
    if limit and len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    return value or None
