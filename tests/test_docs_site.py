"""The docs site as a reader sees it: every page built (mkdocs, strict), and no text lost to the
browser as an unknown HTML tag ("run<r>/" in a params comment, "<method>" in a docstring)."""

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from tests.conftest import REPO

HTML = set(
    """a abbr address area article aside audio b base bdi bdo blockquote body br button canvas caption
    cite code col colgroup data datalist dd del details dfn dialog div dl dt em embed fieldset
    figcaption figure footer form h1 h2 h3 h4 h5 h6 head header hgroup hr html i iframe img input ins
    kbd label legend li link main map mark menu meta meter nav noscript object ol optgroup option
    output p param picture pre progress q rp rt ruby s samp script search section select slot small
    source span strong style sub summary sup table tbody td template textarea tfoot th thead time
    title tr track u ul var video wbr""".split()
)
SVG = set("svg path g circle rect line polyline polygon defs use symbol desc lineargradient stop".split())


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.unknown: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in HTML | SVG:
            self.unknown.append(tag)


def test_no_page_hides_text_as_an_unknown_tag(tmp_path):
    site = tmp_path / "site"
    mkdocs = Path(sys.executable).with_name("mkdocs")
    built = subprocess.run(
        [mkdocs, "build", "--strict", "--quiet", "--site-dir", site],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    pages = sorted(site.rglob("*.html"))
    assert any("reference/params" in str(p) for p in pages) and any("reference/api" in str(p) for p in pages)
    hidden = {}
    for page in pages:
        parser = _Tags()
        parser.feed(page.read_text())
        if parser.unknown:
            hidden[str(page.relative_to(site))] = sorted(set(parser.unknown))
    assert hidden == {}
    params = (site / "reference" / "params" / "index.html").read_text()
    assert "run&lt;r&gt;/" in params  # paths.pretrain's comment, as written
    # every key cell unbreakable (a narrow column wrapped `augment_band_octaves` mid-word)
    assert '<code class="param-key">augment_band_octaves</code>' in params
    css = (site / "stylesheets" / "extra.css").read_text()
    assert "code.param-key" in css and "white-space: nowrap" in css and "stylesheets/extra.css" in params
