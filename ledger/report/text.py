"""Escaping and formatting of the audit report's text.

``esc`` is the one door for a value from the log into the page: ``html.escape`` (quotes too, so
it is safe in an attribute), and every ``://`` written as ``:&#47;&#47;`` so that a URL held by
the log reads the same in a browser while the file holds no ``http://`` or ``https://``: the
report references nothing outside itself, not even in text.
"""

from __future__ import annotations

import html


def esc(value: object) -> str:
    """``value`` as HTML text, safe in element text and in quoted attribute values."""
    return html.escape("" if value is None else str(value), quote=True).replace(
        "://", ":&#47;&#47;"
    )


def short(digest: str | None, n: int = 12) -> str:
    """A hash prefix for a table cell (the full value goes in its title)."""
    return "" if not digest else digest[:n]


def usd(micro: int) -> str:
    """Micro-dollars as dollars with cents (``$1,234.57``)."""
    return f"${micro / 1_000_000:,.2f}"


def tier(t: int | None) -> str:
    return "" if t is None else f"T{t}"
