"""``report.md`` for a sweep: what was searched, the pick, ranked trials, failed trials, plots.

A failed trial is listed with its error; it never vanishes from the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Report:
    """Everything a sweep's report.md shows."""

    title: str
    """Heading, e.g. "Exploration sweep"."""
    summary: dict[str, object]
    """Key facts of the run (objective, search algorithm, trials, seconds, ...), shown as a list."""
    ranked: pd.DataFrame
    """Finished trials, best first, with the columns to show."""
    failed: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Failed trials with their error (columns: trial, error, ...)."""
    plots: dict[str, Path] = field(default_factory=dict)
    """Caption -> PNG path (relative to report.md's folder when inside it)."""
    snippets: dict[str, str] = field(default_factory=dict)
    """Caption -> fenced text, e.g. the serving user_config YAML."""
    notes: list[str] = field(default_factory=list)
    """Warnings the reader must see (too small effective sample size, no pick, ...)."""


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured markdown table of ``df`` (floats to ``digits`` significant digits)."""
    if df.empty:
        return "_(none)_"
    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    lines = [header, rule]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    return "\n".join(lines)


def _cell(value, digits: int) -> str:
    """One table cell: compact numbers, no newlines or pipes that would break the table."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{digits}g}"
    text = str(value).replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= 300 else text[:297] + "..."


def render_report(report: Report, base: Path) -> str:
    """The markdown text of ``report``; plot paths are written relative to ``base``."""
    parts = [f"# {report.title}", ""]
    parts += [f"- **{k}**: {v}" for k, v in report.summary.items()]
    if report.notes:
        parts += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    parts += ["", "## Ranked trials", "", markdown_table(report.ranked)]
    parts += ["", f"## Failed trials ({len(report.failed)})", "", markdown_table(report.failed)]
    for caption, text in report.snippets.items():
        parts += ["", f"## {caption}", "", "```yaml", text.rstrip(), "```"]
    if report.plots:
        parts += ["", "## Plots", ""]
        for caption, path in report.plots.items():
            rel = Path(path).resolve().relative_to(base.resolve()) if _inside(path, base) else Path(path)
            parts += [f"### {caption}", "", f"![{caption}]({rel.as_posix()})", ""]
    return "\n".join(parts).rstrip() + "\n"


def write_report(report: Report, out_dir: Path) -> Path:
    """Write ``out_dir/report.md`` and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.md"
    path.write_text(render_report(report, out_dir))
    return path


def _inside(path: Path, base: Path) -> bool:
    """Whether ``path`` lies under ``base``."""
    try:
        Path(path).resolve().relative_to(base.resolve())
        return True
    except ValueError:
        return False
