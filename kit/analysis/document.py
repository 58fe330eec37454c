"""A report as a list of blocks (headings, text, tables, figures, code), rendered to HTML (`kit.analysis.html`)
and Markdown (`kit.analysis.markdown`) from the same content."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

MISSING = ""


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str
    kind: str = ""          # "" | "note" | "warning" | "ok": a styled callout in HTML, a quote in Markdown


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]
    kind: str = ""


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    formats: Mapping[str, str] = field(default_factory=dict)   # column -> format spec, e.g. ".3f", ".2g"
    caption: str = ""
    badge: str = ""          # a column whose values are shown as coloured badges in HTML (e.g. "verdict")


@dataclass(frozen=True)
class FigureBlock:
    name: str                # file stem: figures/<name>.png
    png: bytes
    caption: str


@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""


Block = Heading | Paragraph | Bullets | Table | FigureBlock | Code


@dataclass(frozen=True)
class Document:
    title: str
    subtitle: str
    blocks: tuple[Block, ...]


def format_value(value: object, spec: str = "") -> str:
    """One table cell as text: NaN and None are blank, booleans yes/no, numbers by `spec`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if spec and isinstance(value, int | float):
        return format(value, spec)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def table_cells(table: Table) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a table block as display strings."""
    frame = table.frame
    header = [str(c) for c in frame.columns]
    rows = [[format_value(_plain(v), table.formats.get(str(c), "")) for c, v in zip(frame.columns, row)]
            for row in frame.itertuples(index=False)]
    return header, rows


def _plain(value: object) -> object:
    """numpy and pandas scalars as Python values (pd.NA as None)."""
    if value is pd.NA or value is pd.NaT:
        return None
    item = getattr(value, "item", None)
    return item() if callable(item) else value
