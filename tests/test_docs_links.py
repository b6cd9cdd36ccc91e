"""Every relative link in README.md and docs/*.md resolves: to a file or folder of the repository, and a `#anchor`
(in the same file or another) to a heading of its target, by GitHub's rules for heading anchors."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import __main__ as bench_main

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

pytestmark = pytest.mark.pure

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
# [text](destination "title") and ![alt](destination); the text may span lines and hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.I)
HTML_ANCHOR = re.compile(r"""<[a-z]+\b[^>]*?\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose_lines(text: str) -> Iterator[str]:
    """The lines outside fenced code blocks."""
    fence = ""
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence:
            if (
                match
                and match.group(1)[0] == fence[0]
                and len(match.group(1)) >= len(fence)
                and not line.strip("`~ \t")
            ):
                fence = ""
            continue
        if match:
            fence = match.group(1)
            continue
        yield line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text (without Markdown) lower-cased, every character but letters, digits,
    `-`, `_` and spaces removed, and each space made a `-`."""
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link's text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a file offers: its headings' (a repeated one numbered -1, -2, ... as GitHub does) and HTML ids."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(path.read_text(encoding="utf-8")):
        if heading := HEADING.match(line):
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(HTML_ANCHOR.findall(line))
    return found


def links(path: Path) -> Iterator[str]:
    """Every link destination in a file's prose (code blocks and code spans hold none)."""
    text = CODE_SPAN.sub("code", "\n".join(prose_lines(path.read_text(encoding="utf-8"))))
    for pattern in (INLINE_LINK, REFERENCE, HTML_LINK):
        for match in pattern.finditer(text):
            destination = match.group(match.lastindex or 0)
            yield destination[1:-1] if destination.startswith("<") else destination


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def broken_links(path: Path) -> list[str]:
    """The relative links of a file that lead nowhere, each with why."""
    broken = []
    for destination in links(path):
        if not destination or SCHEME.match(destination):
            continue  # a URL elsewhere (http:, mailto:) is not ours to check
        target_part, _, anchor = destination.partition("#")
        target = (path.parent / urllib.parse.unquote(target_part)).resolve() if target_part else path
        if not target.exists():
            broken.append(f"{destination}: no file {shown(target)}")
        elif anchor:
            if target.suffix != ".md":
                broken.append(f"{destination}: an anchor into {target.name}, which has no headings")
            elif urllib.parse.unquote(anchor) not in anchors(target):
                broken.append(f"{destination}: no heading of {shown(target)} has the anchor #{anchor}")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(document: Path) -> None:
    assert broken_links(document) == []


def test_the_documents_link_to_each_other() -> None:
    """The README links every page of docs/, and docs/README.md indexes them all."""
    readme = set(links(ROOT / "README.md"))
    index = set(links(ROOT / "docs" / "README.md"))
    for page in DOCUMENTS[1:]:
        if page.name != "README.md":
            assert page.name in {Path(link.partition("#")[0]).name for link in index}, page.name
    assert "docs/README.md" in readme


def test_the_bench_writes_its_figures_into_a_document_between_one_pair_of_markers() -> None:
    text = bench_main.REPORT.read_text(encoding="utf-8")
    assert bench_main.REPORT in DOCUMENTS
    assert text.count(bench_main.START) == 1 and text.count(bench_main.END) == 1
    assert text.index(bench_main.START) < text.index(bench_main.END)


# --- the checker itself --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Cold start and package size (`bench/coldstart.py`)", "cold-start-and-package-size-benchcoldstartpy"),
        (
            "Stream quantile sketches: cost per value (`bench/stream_sketch.py`)",
            "stream-quantile-sketches-cost-per-value-benchstream_sketchpy",
        ),
        ("Why kinesalite, not moto's server", "why-kinesalite-not-motos-server"),
        ("`POST /events`", "post-events"),
        ("What a 503 leaves behind", "what-a-503-leaves-behind"),
        ("1. Prerequisites", "1-prerequisites"),
        (
            "Ingest: the events stream against the direct endpoints",
            "ingest-the-events-stream-against-the-direct-endpoints",
        ),
        ("Sums — and [quantiles](x.md)", "sums--and-quantiles"),
    ],
)
def test_anchors_follow_githubs_rules(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_the_checker_finds_what_is_broken(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A part\n\n## A part\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Here (`x`)\n\n"
        "[ok](other.md) [ok](other.md#a-part) [ok](other.md#a-part-1) [ok](#here-x) [ok](https://example.com/#nowhere)\n"
        "[no file](missing.md) [no anchor](other.md#nowhere) [no anchor here](#nowhere)\n"
        "[a link text\nover two lines](#gone) `[in code](#ignored)`\n\n"
        "```md\n[in a fence](#ignored)\n# Not a heading\n```\n\n[ref]: <other.md#not-a-heading>\n",
        encoding="utf-8",
    )
    assert [problem.split(":")[0] for problem in broken_links(page)] == [
        "missing.md",
        "other.md#nowhere",
        "#nowhere",
        "#gone",
        "other.md#not-a-heading",
    ]
