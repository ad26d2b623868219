"""The run report in a real browser (issue #14 item 6): headless Chromium opens report.html
from disk, runs its script, and the DOM holds the expected steps, figures and sample rows;
a screenshot is taken and checked not to be blank.

Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it when missing);
where it cannot be installed these tests are skipped, saying so.
"""

from __future__ import annotations

import pytest

from chainette import FakeEngine

from .browser import colour_stats, dump_dom, find_chromium, screenshot
from .chains import TimedFake, build_chain, inputs
from .test_report import STEPS, Page, as_int, jsonl, table

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it)",
)


class Dom(Page):
    """A dumped DOM: the report page parts plus what the sample browser's script built."""

    def __init__(self, html: str) -> None:
        self.sample_cols: list[str] = []
        self.row_picks: list[str] = []
        self.svgs: dict[str, int] = {}
        self.err_boxes = 0
        self._figure: str | None = None
        self._grab: str | None = None
        self.texts: dict[str, str] = {}
        super().__init__(html)

    def handle_starttag(self, tag, attrs):
        super().handle_starttag(tag, attrs)
        a = dict(attrs)
        cls = a.get("class") or ""
        if "sample-col" in cls.split():
            self.sample_cols.append(a.get("data-step", ""))
        if "row-pick" in cls.split():
            self.row_picks.append(a.get("data-row", ""))
        if cls == "err":
            self.err_boxes += 1
        if tag == "figure" and a.get("id"):
            self._figure = a["id"]
        if tag == "svg" and self._figure:
            self.svgs[self._figure] = self.svgs.get(self._figure, 0) + 1
        if a.get("id") in ("sample-row-id", "sample-count"):
            self._grab = a["id"]
            self.texts[self._grab] = ""

    def handle_endtag(self, tag):
        super().handle_endtag(tag)
        if tag == "figure":
            self._figure = None
        if tag in ("span", "div") and self._grab:
            self._grab = None

    def handle_data(self, data):
        super().handle_data(data)
        if self._grab:
            self.texts[self._grab] += data


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser") / "run"
    result = build_chain().run(
        inputs(120), output_dir=out, engines={"fk": TimedFake(name="fk", sleep=False)}, cache=False
    )
    return out, result


def test_dom_holds_the_steps_figures_and_sample_rows(report_run, tmp_path):
    out, result = report_run
    dom = Dom(dump_dom(CHROMIUM, (out / "report.html").as_uri(), tmp_path / "profile"))
    rows = table(dom)
    assert list(rows) == STEPS
    for sid in STEPS:
        assert as_int(rows[sid]["rows out"]) == result.step_stats[sid].outputs
    for fig in ("fig-dag", "fig-throughput", "fig-latency", "fig-tokens", "fig-errors"):
        assert dom.svgs.get(fig) == 1, (fig, dom.svgs)
    assert set(dom.dag_nodes) >= set(STEPS)
    # the script ran: it listed the sampled rows and shows the first one across every step
    assert dom.row_picks == [str(i) for i in range(120)]
    assert dom.texts["sample-row-id"] == "0"
    assert dom.sample_cols == ["chain_input", *STEPS]
    assert dom.texts["sample-count"] == "120 of 120 sampled rows"


def test_a_row_id_in_the_address_opens_that_row(report_run, tmp_path):
    out, _ = report_run
    failed = jsonl(out / "errors")[0]["row_id"]
    dom = Dom(dump_dom(CHROMIUM, (out / "report.html").as_uri() + f"#row={failed}", tmp_path / "profile"))
    assert dom.texts["sample-row-id"] == failed
    assert dom.err_boxes == 1  # its error, in the check column
    assert dom.texts["sample-count"] == f"{sum(1 for i in range(120) if str(i).startswith(failed))} of 120 sampled rows"


def test_hostile_values_stay_text_in_the_browser(tmp_path):
    out = tmp_path / "run"
    evil = "</script><script>document.body.setAttribute('data-pwned','1')</script><img src=x onerror=alert(1)>"
    build_chain().run(
        [{"text": evil}],
        output_dir=out,
        cache=False,
        engines={"fk": FakeEngine(name="fk", handler=lambda r: {"answer": evil, "score": 1})},
    )
    dom_text = dump_dom(CHROMIUM, (out / "report.html").as_uri(), tmp_path / "profile")
    assert "data-pwned" not in dom_text.split("<body", 1)[1].split(">", 1)[0]
    assert "<img" not in dom_text
    assert "&lt;/script&gt;&lt;script&gt;document.body.setAttribute('data-pwned'" in dom_text  # shown as text


def test_screenshot_is_not_blank(report_run, tmp_path):
    out, _ = report_run
    png = screenshot(CHROMIUM, (out / "report.html").as_uri(), tmp_path / "report.png", tmp_path / "profile")
    colours, ink = colour_stats(png)
    assert colours > 50, colours  # text, the DAG's fills, chart lines: not a blank page
    assert ink > 0.05, ink  # more than a few pixels differ from the background
