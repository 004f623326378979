"""Every shipped study end to end at `--budget smoke` (generated data), its report parsed and checked.

The HTML report must hold every table and figure it promises: the results
table with one row per arm and the numbers of the runs' metrics.json, the
findings, and for each figure a PNG embedded as a data URI that decodes,
with a one-line caption. report.md must link the same figures as files.
"""

import base64
import csv
import html.parser
import io
import json
import pathlib
import re

import pytest
from PIL import Image

from kerascnn.cli.app import main
from kerascnn.studies.catalog import shipped_names
from kerascnn.studies.figures import FIGURES

TUNING_FIGURES = {"accuracy-by-optimizer", "accuracy-vs-lr", "train-vs-test", "time-by-batch", "epochs-by-split"}


class Report(html.parser.HTMLParser):
    """Tables (id -> rows of cell texts), lists (id -> items) and figures (id -> (PNG bytes, caption))."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.lists, self.figures = {}, {}, {}
        self._table = self._row = self._cell = self._list = self._item = self._figure = self._caption = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs["id"], [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "ul" and "id" in attrs:
            self._list = self.lists.setdefault(attrs["id"], [])
        elif tag == "li" and self._list is not None:
            self._item = []
        elif tag == "figure":
            self._figure = attrs["id"]
        elif tag == "img" and self._figure is not None:
            kind, _, data = attrs["src"].partition(",")
            assert kind == "data:image/png;base64", kind
            self.figures[self._figure] = [base64.b64decode(data), None]
        elif tag == "figcaption":
            self._caption = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = self._row = None
        elif tag == "li" and self._item is not None:
            self._list.append("".join(self._item))
            self._item = None
        elif tag == "ul":
            self._list = None
        elif tag == "figcaption":
            self.figures[self._figure][1] = "".join(self._caption)
            self._caption = None
        elif tag == "figure":
            self._figure = None

    def handle_data(self, data):
        for part in (self._cell, self._item, self._caption):
            if part is not None:
                part.append(data)


def expected_figures(identity):
    """The ids of the figures the report promises for this study (HTML ids, `fig-` prefixed)."""
    if identity["kind"] == "search":
        return {f"fig-{f}" for f in TUNING_FIGURES}
    finished = [a["name"] for a in identity["arms"] if a["name"] not in {s["arm"] for s in identity["skipped"]}]
    wanted = {"curves", "per-class", "confusion"}
    requested = identity["figures"]
    if "receptive_field" in requested:
        wanted.add("receptive-field")
    if "gradcam" in requested:
        wanted.add("gradcam")
    if "memory" in requested:
        wanted.add("memory")
    for arm in finished:
        if "filters" in requested:
            wanted.add(f"filters-{arm}")
        if "feature_maps" in requested:
            wanted.add(f"feature-maps-{arm}")
    return {f"fig-{f}" for f in wanted}


def check_report(out):
    identity = json.loads((out / "study.json").read_text())
    report = Report((out / "report.html").read_text())
    markdown = (out / "report.md").read_text()

    wanted = expected_figures(identity)
    assert set(report.figures) == wanted
    for figure_id, (png, caption) in report.figures.items():
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and min(image.size) >= 200, (figure_id, image.size)
        assert caption and "\n" not in caption and caption.endswith("."), (figure_id, caption)
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(linked) == len(wanted) and all((out / link).is_file() for link in linked)
    assert markdown.startswith(f"# {identity['title']}\n")

    findings = report.lists["findings"]
    assert findings and all(f.endswith(".") for f in findings)
    results = report.tables["results"]
    return identity, report, results, findings


def check_arm_results(out, identity, results, findings):
    """One row per planned arm; its test accuracy is the runs' metrics.json figure."""
    header, rows = results[0], results[1:]
    assert header[:4] == ["arm", "model", "seeds", "test accuracy (mean ± sd)"]
    planned = [a for a in identity["arms"] if a["name"] not in {s["arm"] for s in identity["skipped"]}]
    assert [r[0] for r in rows] == [a["label"] for a in planned]
    exact = {r["arm"]: r for r in csv.DictReader(io.StringIO((out / "results.csv").read_text()))}
    accuracies = {}
    for arm, row in zip(planned, rows):
        metrics = json.loads((out / "runs" / f"{arm['name']}-seed0" / "metrics.json").read_text())
        accuracies[arm["label"]] = metrics["test_accuracy"]
        assert row[3] == f"{100 * metrics['test_accuracy']:.1f}%"
        assert float(exact[arm["name"]]["test_accuracy"]) == pytest.approx(metrics["test_accuracy"])
        assert row[9] == f"{metrics['params']:,}" and row[10].endswith(" M")
    winner = max(accuracies, key=accuracies.get)
    assert findings[0].startswith(f"{winner} won with {100 * accuracies[winner]:.1f}%")
    runs = {row[0]: row for row in Report((out / "report.html").read_text()).tables["runs"][1:]}
    assert all(row[2] == "finished" for row in runs.values())
    if "memory" in identity["figures"]:
        check_memory_table(out, planned)


def check_memory_table(out, planned):
    """One row per arm; each GB column is floor((G - fixed) / per image) of the shown MiB, and a power of two below it.

    The shown MiB are rounded (per image to 0.001, fixed to 1), so the batch must lie
    between the bounds those roundings allow; the estimate itself is tested by hand in
    tests/test_analysis_memory.py.
    """
    table = Report((out / "report.html").read_text()).tables["memory"]
    header, rows = table[0], table[1:]
    gpus = [h for h in header if h.endswith(" GB")]
    assert header[:6] == ["arm", "parameters", "optimizer (slots s)", "activations", "MiB per image (2A)",
                          "fixed MiB"] and gpus == ["8 GB", "16 GB", "24 GB", "40 GB", "80 GB"]
    assert [r[0] for r in rows] == [a["label"] for a in planned]
    for arm, row in zip(planned, rows):
        metrics = json.loads((out / "runs" / f"{arm['name']}-seed0" / "metrics.json").read_text())
        assert row[1] == f"{metrics['params']:,}" and row[2] == "SGD + momentum (1)" and row[3] == "float32"
        per, fixed = float(row[4]), float(row[5].replace(",", ""))
        assert per > 0 and fixed >= 1024  # the 1 GiB reserve
        batches = []
        for gpu, cell in zip(gpus, row[6:]):
            batch, power = (int(v.replace(",", "")) for v in re.fullmatch(r"([\d,]+) \(([\d,]+)\)", cell).groups())
            assert power & (power - 1) == 0 and power <= batch < 2 * power, cell
            total = 1024 * int(gpu.split()[0])
            assert (total - fixed - 0.5) / (per + 0.0005) - 1 <= batch <= (total - fixed + 0.5) / (per - 0.0005)
            batches.append(batch)
        assert batches == sorted(batches)
    assert "Estimated from the networks' sizes, not measured" in (out / "report.md").read_text()


# Every shipped study, in the default suite (the bar). Every fit costs seconds of
# tracing however small the network (3-25 s on the 2-core host), so the six take about 2 minutes
# of the suite's wall time on two xdist workers; their smoke budgets are as small as a run can be.
STUDIES = shipped_names()


@pytest.mark.studies
@pytest.mark.parametrize("name", STUDIES)
def test_a_shipped_study_runs_end_to_end_at_smoke_and_its_report_holds_every_table_and_figure(
    name, tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("KERASCNN_GOOGLENET_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / name
    assert main(["study", name, "--budget", "smoke", "--out", str(out)]) == 0
    identity, report, results, findings = check_report(out)
    if identity["kind"] == "search":
        header, rows = results[0], results[1:]
        assert header[0] == "trial" and len(rows) == 2  # the smoke budget's max_trials
        trials = list(csv.DictReader(io.StringIO((out / "search" / "trials.csv").read_text())))
        assert sorted(float(t["test_accuracy"]) for t in trials) == pytest.approx(sorted(
            float(r["test_accuracy"]) for r in csv.DictReader(io.StringIO((out / "results.csv").read_text()))))
        assert findings[0].startswith("The best of 2 trials by validation accuracy")
    else:
        check_arm_results(out, identity, results, findings)
    if name == "auxiliary":  # offline: the pretrained pair is reported as not run, with the reason
        assert "not-run" in (out / "report.html").read_text()
        assert "pretrained: needs $KERASCNN_GOOGLENET_WEIGHTS naming a file" in (out / "report.md").read_text()
    if name == "grid":
        # study-report rebuilds the same report from the folder alone.
        before = (out / "results.csv").read_text()
        for written in ("report.md", "report.html", "results.csv"):
            (out / written).unlink()
        assert main(["study-report", str(out)]) == 0
        assert (out / "results.csv").read_text() == before
        check_report(out)
    assert not list(pathlib.Path(out / FIGURES).glob(".*"))  # no temporary file left behind
