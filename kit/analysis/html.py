"""A Document as one self-contained HTML page: inline CSS, figures embedded as base64 PNG, no scripts, no
external URLs — it opens from disk, offline, in any browser."""

from __future__ import annotations

import base64
import html
import re

from kit.analysis.document import Block, Bullets, Document, FigureBlock, Heading, Paragraph, Table, table_cells

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330; margin: 0;
       background: #fafbfc; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 34px 0 10px; border-bottom: 1px solid #e3e6eb;
     padding-bottom: 4px; } h3 { font-size: 16px; margin: 22px 0 8px; }
.subtitle { color: #5b6475; margin: 0 0 18px; }
nav { font-size: 13px; margin: 10px 0 18px; } nav a { margin-right: 12px; color: #1f4e8c; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 6px; }
th, td { border-bottom: 1px solid #e3e6eb; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #f1f3f6; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; } caption { caption-side: top; text-align: left; color: #5b6475; padding: 2px 0 4px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; font-size: 12px; }
.b-transmitted { background: #d7f0dd; color: #11612a; } .b-not-detected { background: #e8eaee; color: #3f4756; }
.b-inconclusive { background: #fdf0cf; color: #7a5700; } .b-yes { background: #fde2df; color: #8c1d12; }
.callout { border-left: 4px solid #8fb8de; background: #f3f7fb; padding: 8px 12px; margin: 10px 0; }
.callout.warning { border-color: #e0a100; background: #fff8e6; } .callout.ok { border-color: #2f9e57;
     background: #eefaf2; }
figure { margin: 16px 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eceef2; }
figcaption { color: #5b6475; font-size: 13px; margin-top: 4px; }
pre { background: #f5f6f8; padding: 10px 12px; overflow-x: auto; font-size: 12px; }
"""

NUMERIC = re.compile(r"^[-+]?[\d.,]+(e[-+]?\d+)?%?$|^[-+]?[\d.]+–[-+]?[\d.]+$")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _table(block: Table) -> str:
    header, rows = table_cells(block)
    badge = header.index(block.badge) if block.badge in header else -1
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(value, i == badge) for i, value in enumerate(row)) + "</tr>" for row in rows)
    caption = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
    return f'<div class="scroll"><table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _cell(value: str, badge: bool) -> str:
    text = html.escape(value)
    if badge and value:
        return f'<td><span class="badge b-{_slug(value)}">{text}</span></td>'
    return f'<td class="num">{text}</td>' if NUMERIC.match(value) else f"<td>{text}</td>"


def _figure(block: FigureBlock) -> str:
    data = base64.b64encode(block.png).decode("ascii")
    caption = html.escape(block.caption)
    return (f'<figure id="fig-{_slug(block.name)}"><img src="data:image/png;base64,{data}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        return f'<h{block.level} id="{_slug(block.text)}">{html.escape(block.text)}</h{block.level}>'
    if isinstance(block, Paragraph):
        css = f' class="callout {block.kind}"' if block.kind else ""
        return f"<p{css}>{html.escape(block.text)}</p>"
    if isinstance(block, Bullets):
        items = "".join(f"<li>{html.escape(item)}</li>" for item in block.items)
        css = f' class="callout {block.kind}"' if block.kind else ""
        return f"<ul{css}>{items}</ul>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, FigureBlock):
        return _figure(block)
    return f"<pre><code>{html.escape(block.text)}</code></pre>"


def _nav(document: Document) -> str:
    links = [f'<a href="#{_slug(b.text)}">{html.escape(b.text)}</a>' for b in document.blocks
             if isinstance(b, Heading) and b.level == 2]
    return f"<nav>{''.join(links)}</nav>" if links else ""


def render_html(document: Document) -> str:
    body = "\n".join(_block(b) for b in document.blocks)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(document.title)}</title><style>{CSS}</style></head>\n<body><main>"
            f"<h1>{html.escape(document.title)}</h1><p class=\"subtitle\">{html.escape(document.subtitle)}</p>"
            f"{_nav(document)}\n{body}\n</main></body></html>\n")
