"""The demo's report as a page to open in a browser: ``index.html`` beside ``report.md``, the same text
with every plot inline (a ``data:`` URI), so the one file shows the whole report wherever it is copied.

The markdown is rendered by markdown-it-py (CommonMark plus tables); raw HTML in the markdown is escaped.
"""

from __future__ import annotations

import base64
import html
import mimetypes
from pathlib import Path

from markdown_it import MarkdownIt

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; }
pre { background: #f6f6f6; padding: 0.75rem; overflow-x: auto; font-size: 12px; }
code { font-family: ui-monospace, monospace; }
"""


def data_uri(path: Path) -> str:
    """The file as a ``data:`` URI (its type from its name)."""
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def render(markdown: str, folder: Path) -> str:
    """The markdown as a whole HTML page; each image found under ``folder`` is inlined, others keep their link."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(markdown)
    title = next((t.content for i, t in enumerate(tokens[1:], 1) if tokens[i - 1].type == "heading_open"), "Report")
    for token in tokens:
        for child in token.children or []:
            src = child.attrGet("src") if child.type == "image" else None
            if src and "://" not in src and (Path(folder) / src).is_file():
                child.attrSet("src", data_uri(Path(folder) / src))
    body = md.renderer.render(tokens, md.options, {})
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n")


def write_page(report: Path) -> Path:
    """Write ``index.html`` beside ``report`` (a markdown file whose image links are relative to its folder)."""
    page = Path(report).with_name("index.html")
    page.write_text(render(Path(report).read_text(), Path(report).parent), encoding="utf-8")
    return page
