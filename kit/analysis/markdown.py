"""A Document as Markdown (GitHub-flavoured tables); figures are linked as files beside the report."""

from __future__ import annotations

from collections.abc import Mapping

from kit.analysis.document import Block, Bullets, Code, Document, FigureBlock, Heading, Paragraph, Table, table_cells


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(block: Table) -> str:
    header, rows = table_cells(block)
    lines = [f"*{block.caption}*", ""] if block.caption else []
    lines.append("| " + " | ".join(_escape(h) for h in header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(_escape(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _block(block: Block, figure_paths: Mapping[str, str]) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + block.text
    if isinstance(block, Paragraph):
        return f"> **{block.kind}:** {block.text}" if block.kind in ("warning", "note") else block.text
    if isinstance(block, Bullets):
        prefix = "- ⚠ " if block.kind == "warning" else "- "
        return "\n".join(prefix + item for item in block.items)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, FigureBlock):
        path = figure_paths.get(block.name, f"figures/{block.name}.png")
        return f"![{block.caption}]({path})\n\n*{block.caption}*"
    assert isinstance(block, Code)
    return f"```{block.language}\n{block.text.rstrip()}\n```"


def render_markdown(document: Document, figure_paths: Mapping[str, str] | None = None) -> str:
    parts = [f"# {document.title}", f"*{document.subtitle}*"]
    parts += [_block(b, figure_paths or {}) for b in document.blocks]
    return "\n\n".join(parts) + "\n"
