"""The HTML report of one analysis run, with its charts as PNG files beside it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import jinja2

from pipeline.analysis.results import AnalysisResult
from pipeline.outputs import charts
from pipeline.outputs.onsets_text import onset_view
from pipeline.outputs.verdict import (
    count_text,
    event_when,
    fmt_count,
    fmt_p,
    fmt_p_range,
    fmt_span,
    fmt_time,
    fmt_window,
    reading,
    strength,
    verdict,
)

TEMPLATES = Path(__file__).parent / "templates"


def is_web_url(url) -> bool:
    """Only http(s) links are rendered as links: a feed may carry javascript: or data: URLs."""
    return isinstance(url, str) and urlsplit(url.strip()).scheme.lower() in ("http", "https")


def safe_url(url) -> str:
    return url.strip() if is_web_url(url) else "#"


def template_env() -> jinja2.Environment:
    """Autoescaping on for every template but plain-text ones (*.txt.j2): titles and texts come
    from feeds and files we do not control."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=lambda name: not (name or "").endswith(".txt.j2"),
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(p=fmt_p, strength=strength, when=lambda t: fmt_time(t, None, True),
                       count=fmt_count, window=fmt_window, safe_url=safe_url, is_web_url=is_web_url)
    env.globals.update(fmt_p_range=fmt_p_range, event_when=event_when, count_text=count_text,
                       reading=reading, fmt_span=fmt_span)
    return env


def report_images(result: AnalysisResult) -> dict[str, bytes]:
    """The report's charts as PNG bytes, by name."""
    images = {"timeline": charts.timeline_png(result) if len(result.releases) == 1 else charts.series_png(result)}
    for i, s in enumerate(result.streams):
        if s.correlogram is not None and not s.stream.spec.curated:
            images[f"correlogram_{i}"] = charts.correlogram_png(s.correlogram, s.stream.spec.label)
    return images


def render_report(result: AnalysisResult, image_src: dict[str, str]) -> str:
    """The report's HTML, its images at ``image_src`` (a file name, or a data: URI in a page)."""
    return template_env().get_template("report.html.j2").render(
        r=result, v=verdict(result), images=image_src, claim=result.claim, onsets=onset_view(result.onsets),
    )


def write_report(result: AnalysisResult, out_dir: Path) -> Path:
    """Write <claim>.html (and its PNGs) into ``out_dir``; returns the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = result.claim.id
    files = {}
    for name, png in report_images(result).items():
        f = out_dir / f"{stem}_{name}.png"
        f.write_bytes(png)
        files[name] = f.name
    path = out_dir / f"{stem}.html"
    path.write_text(render_report(result, files), encoding="utf-8")
    return path
