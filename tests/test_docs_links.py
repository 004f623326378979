"""Every link between the repository's own Markdown files resolves.

README.md is the user's manual and links its figures to docs/results.md and
benchmarks/NOTES.md by section. A heading renamed or a section anchor mistyped
leaves a link that opens the file at its top, which no reader notices until
they follow it. This reads the links from the text, so it needs no TensorFlow.

An anchor resolves when the target file has an explicit `<a id="...">` or
`<a name="...">` with it, or a heading whose GitHub slug equals it. GitHub's
slug: the heading text lower-cased, every character that is not a letter,
digit, underscore, hyphen or space removed, then each space made a hyphen
(so "AVX2 + FMA" gives "avx2--fma"), and "-1", "-2", ... appended to repeats.
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Inline links `[text](target)`; images share the syntax and are checked too.
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
EXPLICIT_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")
FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_files():
    files = [ROOT / "README.md", ROOT / "benchmarks" / "NOTES.md"]
    files += sorted((ROOT / "docs").rglob("*.md"))
    return [path for path in files if path.exists()]


def prose_lines(text):
    """The lines outside fenced code blocks: a `](` inside code is not a link."""
    inside_fence = False
    for line in text.splitlines():
        if FENCE.match(line):
            inside_fence = not inside_fence
            continue
        if not inside_fence:
            yield line


def github_slug(heading_text):
    slug = heading_text.strip().lower()
    slug = re.sub(r"[^\w\- ]", "", slug)
    return slug.replace(" ", "-")


def anchors_of(path):
    text = path.read_text()
    anchors = set(EXPLICIT_ANCHOR.findall(text))
    seen = {}
    for line in prose_lines(text):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        anchors.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    return anchors


def local_links(path):
    """(target file, anchor or None) for each link that stays inside the repository."""
    for line in prose_lines(path.read_text()):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            yield target, resolved, anchor or None


def test_slug_follows_githubs_rule():
    assert github_slug("22. TensorFlow's oneDNN kernels (issue 19, AVX2 + FMA)") == (
        "22-tensorflows-onednn-kernels-issue-19-avx2--fma")
    assert github_slug("Measured results") == "measured-results"


def test_a_mistyped_anchor_is_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Real heading\n\n[ok](#real-heading) [typo](#real-headin)\n")
    anchors = anchors_of(page)
    missing = [target for target, _, anchor in local_links(page) if anchor not in anchors]
    assert missing == ["#real-headin"]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_local_link_resolves(path):
    broken = []
    anchor_cache = {}
    for target, resolved, anchor in local_links(path):
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
            continue
        if anchor is None or resolved.suffix != ".md":
            continue
        if resolved not in anchor_cache:
            anchor_cache[resolved] = anchors_of(resolved)
        if anchor not in anchor_cache[resolved]:
            broken.append(f"{target} (no such section)")
    assert not broken, f"{path.relative_to(ROOT)}: broken links: {broken}"
