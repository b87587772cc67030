"""The training run's evaluation report as one self-contained HTML file (plots inline as PNG data
URIs, no external CSS, fonts or scripts), built from the Markdown report and the run's figures."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence

# Sections of the Markdown report (by the start of their "## " heading) and the figure group
# shown after each.
SECTION_FIGURES = (("Lifetime value", "ltv"), ("Churn", "churn"), ("Segments and tiers", "segments"))

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #1f2328; line-height: 1.45; padding: 0 1rem; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .85rem; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr:nth-child(even) { background: #f6f8fa; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; flex: 1 1 480px; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { font-size: .8rem; color: #57606a; }
nav ul { columns: 2; }
"""


def _sections(markdown_text: str) -> tuple[str, list[tuple[str, str]]]:
    """(text before the first "## ", [(heading, body), ...]) of a Markdown document."""
    head, sections, current, body = [], [], None, []
    for line in markdown_text.splitlines():
        if line.startswith("## "):
            if current is not None:
                sections.append((current, "\n".join(body)))
            current, body = line[3:].strip(), []
        elif current is None:
            head.append(line)
        else:
            body.append(line)
    if current is not None:
        sections.append((current, "\n".join(body)))
    return "\n".join(head), sections


def _figure_html(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    caption = html.escape(name.rsplit("/", 1)[-1].removesuffix(".png").replace("_", " "))
    image = f'<img alt="{caption}" src="data:image/png;base64,{data}">'
    return f"<figure>{image}<figcaption>{caption}</figcaption></figure>"


def _gallery(items: Sequence[tuple[str, bytes]]) -> str:
    return '<div class="figures">' + "".join(_figure_html(name, png) for name, png in items) + "</div>"


def render_html(
    markdown_text: str, figures: Mapping[str, Sequence[tuple[str, bytes]]], *, title: str = "clv train report"
) -> str:
    """HTML of ``markdown_text`` with each figure group (``ltv``, ``churn``, ``segments``: lists of
    (name, PNG bytes)) placed after its section (:data:`SECTION_FIGURES`); deterministic for the
    same inputs."""
    import markdown

    def convert(text: str) -> str:
        return markdown.markdown(text, extensions=["tables"], output_format="html")

    head, sections = _sections(markdown_text)
    placed: set[str] = set()
    parts = [convert(head)]
    toc = []
    for index, (heading, body) in enumerate(sections):
        anchor = f"s{index}"
        toc.append(f'<li><a href="#{anchor}">{html.escape(heading)}</a></li>')
        parts.append(f'<h2 id="{anchor}">{html.escape(heading)}</h2>')
        parts.append(convert(body))
        for prefix, group in SECTION_FIGURES:
            if heading.startswith(prefix) and group not in placed and figures.get(group):
                placed.add(group)
                parts.append(_gallery(figures[group]))
    leftovers = [group for group in figures if group not in placed and figures[group]]
    for group in leftovers:
        parts.append(f"<h2>Figures: {html.escape(group)}</h2>")
        parts.append(_gallery(figures[group]))
    nav = f"<nav><ul>{''.join(toc)}</ul></nav>" if toc else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        + parts[0]
        + nav
        + "\n".join(parts[1:])
        + "\n</body></html>\n"
    )
