"""The HTML pieces of OUT/report.html: the page skeleton with its inline CSS, tables and embedded images.

Everything a page needs is inside it (no scripts, fonts or style sheets fetched), so it opens from a mail
attachment or a machine without network. Every string that came from the user's data passes through `esc`.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Iterable

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222;
       background: #fff; }}
h1 {{ font-size: 1.6em; margin-bottom: 0.2em; }}
h2 {{ font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }}
table {{ border-collapse: collapse; margin: 0.6em 0; }}
th, td {{ border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
figure {{ display: inline-block; margin: 0.5em 1em 0.5em 0; }}
figure img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ font-size: 0.9em; color: #555; }}
.gallery {{ display: flex; flex-wrap: wrap; gap: 0.8em; }}
.card {{ border: 1px solid #ddd; border-radius: 4px; padding: 0.5em; width: 14em; font-size: 0.9em; }}
.card img, .card svg {{ display: block; width: 100%; height: auto; margin-bottom: 0.3em; }}
.card.text {{ width: 22em; }}
.sentence {{ font-style: italic; margin: 0.2em 0 0.4em; overflow-wrap: anywhere; }}
.bad {{ color: #a00; }}
.note {{ color: #555; font-size: 0.9em; }}
code {{ background: #f5f5f5; padding: 0 0.2em; overflow-wrap: anywhere; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="note">{subtitle}</p>
{body}
</body>
</html>
"""


def esc(value: Any) -> str:
    """Text for HTML, quotes included: class names, file names and sentences are the user's, not markup."""
    return html.escape(str(value), quote=True)


def page(title: str, subtitle: str, sections: Iterable[str]) -> str:
    return PAGE.format(title=esc(title), subtitle=esc(subtitle), body="\n".join(s for s in sections if s))


def section(heading: str, *parts: str) -> str:
    """One <h2> section; empty when it has nothing to show."""
    content = "\n".join(part for part in parts if part)
    return f"<section>\n<h2>{esc(heading)}</h2>\n{content}\n</section>" if content else ""


def paragraph(text: str, css: str = "") -> str:
    return f'<p class="{css}">{esc(text)}</p>' if css else f"<p>{esc(text)}</p>"


def number(value: Any) -> str:
    """A figure as the page prints it: 3 decimals for fractions, thousands separators for counts."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """A table of cells; numbers are right-aligned and formatted, anything else is escaped text."""
    lines = ["<table>", "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    count = 0
    for row in rows:
        cells = []
        for cell in row:
            numeric = isinstance(cell, (int, float)) and not isinstance(cell, bool)
            cells.append(f'<td class="num">{esc(number(cell))}</td>' if numeric else f"<td>{esc(number(cell))}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
        count += 1
    return "\n".join(lines + ["</table>"]) if count else ""


def data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def figure(path: Path, caption: str) -> str:
    """A PNG of the run folder, embedded in the page."""
    return (f'<figure><img src="{data_uri(path.read_bytes(), "image/png")}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")
