"""SQL text helpers shared by the lakehouse modules (the only package that writes SQL)."""

from __future__ import annotations


def quote(text: str) -> str:
    """Return ``text`` for use inside a single-quoted SQL string literal.

    >>> quote("O'Brien")
    "O''Brien"
    """
    return text.replace("'", "''")
