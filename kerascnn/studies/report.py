"""A study's report: report.md, a self-contained report.html and results.csv, from the folder alone.

`write_report(study_dir)` reads study.json (the plan) and the run
directories (or, for a search, the `tune` results folder), computes the
tables and the findings (`kerascnn.studies.findings`), draws the figures
(`kerascnn.studies.figures`) into figures/, and writes

    report.md     Markdown, figures linked from figures/
    report.html   the same, every image embedded (base64 data URIs): one file to send or open
    results.csv   the results table with exact numbers

`python main.py study-report DIR` runs it again at any time (on a running,
interrupted or finished study). Every file is written atomically.
"""

import base64
import datetime
import html
import pathlib

from kerascnn.storage.atomic import write_text
from kerascnn.studies.catalog import SHIPPED
from kerascnn.studies import figures as study_figures
from kerascnn.studies import findings as study_findings
from kerascnn.studies import folder as study_folder
from kerascnn.studies import results as study_results

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
RESULTS_CSV = "results.csv"

RESULT_COLUMNS = (
    ("arm", "arm"), ("model", "model"), ("seeds", "seeds"), ("test_accuracy", "test accuracy (mean ± sd)"),
    ("test_range", "seed range"), ("train_accuracy", "train accuracy"), ("overfitting_gap", "overfitting gap"),
    ("seconds_per_epoch", "s/epoch"), ("epochs", "epochs"), ("params", "parameters"), ("macs", "MACs"),
)
TUNING_CAPTIONS = {
    "accuracy_by_optimizer": "Mean test accuracy per optimizer, one bar per regulariser (batch norm or dropout); "
                             "the dots are the trials.",
    "accuracy_vs_lr": "Test accuracy against learning rate (log scale), one colour per optimizer; lines join the "
                      "means per rate.",
    "train_vs_test": "Best training accuracy against test accuracy of every trial; the further below the "
                     "diagonal, the more a trial overfits.",
    "time_by_batch": "Training time of a trial by batch size, one bar per optimizer.",
    "epochs_by_split": "Epochs each trial ran before early stopping, by train/validation split; the bar is the mean.",
}
NOTES = (
    "Test accuracy is that of each run's tested checkpoint (the best validation epoch, or the last with no "
    "validation set) on the whole test split; mean and sample standard deviation over seeds.",
    "Seed range: highest minus lowest test accuracy over an arm's seeds. Findings call a difference larger than "
    "the seed spread when it exceeds the larger range of the two arms.",
    "Train accuracy: the last epoch's running training accuracy (dropout and augmentation on); overfitting gap: "
    "that minus the test accuracy.",
    "s/epoch: median seconds of an epoch after the first (which includes tracing); MACs: multiply-accumulates "
    "per image of the inference network.",
)


# --- cells ----------------------------------------------------------------------


def _pct(v):
    return "-" if v is None else f"{100 * v:.1f}%"


def _pts(v):
    return "-" if v is None else f"{100 * v:+.1f} pts"


def _num(v, fmt="{:,}"):
    return "-" if v is None else fmt.format(v)


def result_rows(summaries):
    """(display rows, exact rows) of the results table."""
    shown, exact = [], []
    for s in summaries:
        seeds = f"{s.seeds}/{s.planned}"
        test = "-" if s.test_mean is None else (
            _pct(s.test_mean) + (f" ± {100 * s.test_std:.1f}" if s.test_std is not None else ""))
        shown.append({
            "arm": s.label, "model": s.model, "seeds": seeds, "test_accuracy": test,
            "test_range": "-" if s.test_range is None else f"{100 * s.test_range:.1f} pts",
            "train_accuracy": _pct(s.train_mean), "overfitting_gap": _pts(s.gap_mean),
            "seconds_per_epoch": _num(s.seconds_per_epoch, "{:.1f}"), "epochs": _num(s.epochs, "{:g}"),
            "params": _num(s.params), "macs": "-" if s.macs is None else f"{s.macs / 1e6:,.1f} M",
        })
        exact.append({
            "arm": s.name, "model": s.model, "seeds": s.seeds, "test_accuracy": s.test_mean,
            "test_std": s.test_std, "test_range": s.test_range,
            "test_accuracies": " ".join(f"{t:.6f}" for t in s.tests), "train_accuracy": s.train_mean,
            "overfitting_gap": s.gap_mean, "seconds_per_epoch": s.seconds_per_epoch, "epochs": s.epochs,
            "params": s.params, "macs": s.macs,
        })
    return shown, exact


# --- the document, as a list of blocks rendered twice (Markdown and HTML) -------------


class Document:
    """Blocks of a report: headings, paragraphs, lists, tables, figures."""

    def __init__(self):
        self.blocks = []

    def heading(self, text, level=2, id=None):
        self.blocks.append(("heading", level, text, id))

    def paragraph(self, text):
        self.blocks.append(("paragraph", text))

    def items(self, items, id=None):
        self.blocks.append(("items", list(items), id))

    def table(self, columns, rows, id):
        """`columns`: [(key, header)]; `rows`: dicts by key."""
        self.blocks.append(("table", list(columns), list(rows), id))

    def figure(self, figure):
        self.blocks.append(("figure", figure))

    def markdown(self, base):
        out = []
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                out.append(f"{'#' * block[1]} {block[2]}")
            elif kind == "paragraph":
                out.append(block[1])
            elif kind == "items":
                out.append("\n".join(f"- {item}" for item in block[1]))
            elif kind == "table":
                columns, rows = block[1], block[2]
                lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
                lines += ["| " + " | ".join(str(r.get(k, "")).replace("|", "\\|") for k, _ in columns) + " |"
                          for r in rows]
                out.append("\n".join(lines))
            elif kind == "figure":
                f = block[1]
                rel = pathlib.Path(f.path).relative_to(base).as_posix()
                out.append(f"![{f.id}]({rel})\n\n*{f.caption}*")
        return "\n\n".join(out) + "\n"

    def html(self, title):
        esc = html.escape
        body = []
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                anchor = f' id="{esc(block[3])}"' if block[3] else ""
                body.append(f"<h{block[1]}{anchor}>{esc(block[2])}</h{block[1]}>")
            elif kind == "paragraph":
                body.append(f"<p>{esc(block[1])}</p>")
            elif kind == "items":
                anchor = f' id="{esc(block[2])}"' if block[2] else ""
                body.append(f"<ul{anchor}>" + "".join(f"<li>{esc(i)}</li>" for i in block[1]) + "</ul>")
            elif kind == "table":
                columns, rows, id = block[1], block[2], block[3]
                head = "".join(f"<th>{esc(h)}</th>" for _, h in columns)
                cells = "".join(
                    "<tr>" + "".join(f"<td>{esc(str(r.get(k, '')))}</td>" for k, _ in columns) + "</tr>"
                    for r in rows
                )
                # A wide table (the memory limits' ten columns) scrolls inside its own box
                # instead of running off the page's right edge (seen in a headless screenshot).
                body.append(
                    f'<div class="table-scroll"><table id="{esc(id)}"><thead><tr>{head}</tr></thead>'
                    f"<tbody>{cells}</tbody></table></div>"
                )
            elif kind == "figure":
                f = block[1]
                data = base64.b64encode(pathlib.Path(f.path).read_bytes()).decode("ascii")
                body.append(
                    f'<figure id="fig-{esc(f.id)}"><img alt="{esc(f.id)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{esc(f.caption)}</figcaption></figure>"
                )
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n"
        )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}"
    ".table-scroll{overflow-x:auto;margin:1em 0}table{border-collapse:collapse;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:0.3em 0.6em;text-align:right}td{white-space:nowrap}"
    "th:first-child,td:first-child,td:nth-child(2){text-align:left}th{background:#f3f3f3}"
    "figure{margin:1.5em 0}img{max-width:100%;border:1px solid #eee}"
    "figcaption{font-size:0.9em;color:#555;margin-top:0.3em}#findings li{margin:0.3em 0}"
)


def _header(doc, identity, data):
    doc.heading(identity["title"], 1)
    if identity.get("question"):
        doc.paragraph(identity["question"])
    doc.items([
        f"Study {identity['study']}, budget {identity['budget']}: {identity.get('budget_description') or '-'}",
        f"Data: {data}",
        f"Reproduce: {reproduce_command(identity)}",
        f"Report written {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} from the runs in this folder "
        "(python main.py study-report DIR rewrites it).",
    ])
    if identity.get("references"):
        doc.paragraph("References: " + "; ".join(identity["references"]) + ".")


def reproduce_command(identity):
    """The `study` command that makes (or continues) this study folder."""
    source = identity.get("source") or identity["study"]
    shipped = pathlib.Path(source).parent == SHIPPED
    command = f"python main.py study {identity['study'] if shipped else source} --budget {identity['budget']}"
    for flag, value in (identity.get("data_override") or {}).items():
        if value is not None:
            command += f" --{flag.replace('_', '-')} {value}"
    return command


def _data_description(outcomes):
    for o in outcomes:
        if o.config:
            resolved = o.config.get("resolved") or {}
            shape = resolved.get("image_shape")
            size = f" at {shape[0]}x{shape[1]}" if shape and len(shape) >= 2 else ""
            return (f"{resolved.get('source') or (o.config.get('data') or {}).get('dataset') or 'cifar10'}, "
                    f"{resolved.get('num_train', '?'):,} training / {resolved.get('num_val', 0):,} validation / "
                    f"{resolved.get('num_test', '?'):,} test images{size}")
    return "no run has started yet"


def _arm_report(doc, study_dir, identity, log):
    outcomes, summaries = study_results.collect(study_dir, identity)
    _header(doc, identity, _data_description(outcomes))
    done = [s for s in summaries if s.test_mean is not None]
    figures_dir = pathlib.Path(study_dir) / study_figures.FIGURES
    figures, field_facts = [], []
    memory = _memory_estimates(identity, done)
    # Every model a figure shows is read back before the first figure is written.
    loaded = _load_pictured(identity, done)
    if done:
        figures.append(study_figures.curves(done, figures_dir / "curves.png"))
        figures.append(study_figures.per_class(done, figures_dir / "per_class.png"))
        best = max(done, key=lambda s: s.test_mean)
        figures.append(study_figures.confusion(best, figures_dir / "confusion.png"))
        figures += _requested_figures(study_dir, identity, done, loaded, figures_dir, field_facts, log)
    if memory:
        figures.append(study_figures.memory(memory, figures_dir / "memory.png"))
    findings = study_findings.arm_findings(summaries, identity.get("baseline"))
    findings += study_findings.field_findings(field_facts)
    doc.heading("Findings", id="findings-heading")
    doc.items(findings, id="findings")
    doc.heading("Results", id="results-heading")
    shown, exact = result_rows(summaries)
    doc.table(RESULT_COLUMNS, shown, "results")
    doc.heading("Runs", 3)
    doc.table(
        (("run", "run"), ("seed", "seed"), ("state", "state"), ("test", "test accuracy"), ("epochs", "epochs"),
         ("folder", "folder")),
        [{"run": o.name, "seed": o.seed, "state": o.state + (f": {o.failure}" if o.failure else ""),
          "test": _pct(o.metrics["test_accuracy"]) if o.metrics else "-",
          "epochs": o.metrics.get("epochs_run") if o.metrics else len(o.history),
          "folder": f"{study_folder.RUNS}/{o.name}"} for o in outcomes],
        "runs",
    )
    not_run = [f"{s['arm']}: {s['reason']}" for s in identity.get("skipped", [])]
    if not_run:
        doc.heading("Arms not run", 3, id="not-run")
        doc.items(not_run)
    if "memory" in (identity.get("figures") or []) and done:
        from kerascnn.studies.memory import section

        section(doc, done, memory)
    doc.heading("Figures", id="figures")
    for figure in figures:
        doc.figure(figure)
    doc.heading("How the numbers are computed", 3)
    doc.items(NOTES)
    return exact


PICTURES = ("filters", "feature_maps", "gradcam")


def _memory_estimates(identity, done):
    """[(ArmSummary, MemoryEstimate)] when the study asks for the `memory` section, else []."""
    if not done or "memory" not in (identity.get("figures") or []):
        return []
    from kerascnn.studies.memory import arm_estimates

    return arm_estimates(done)


def _load_pictured(identity, done):
    """{arm: `Loaded` model} of the arms whose best model a requested figure draws ({} when none does)."""
    if not done or not any(f in PICTURES for f in identity.get("figures") or []):
        return {}
    from kerascnn.analysis.visualize import load_for_analysis

    return {s.name: load_for_analysis(s.runs[0].path) for s in done}


def _requested_figures(study_dir, identity, done, loaded, figures_dir, field_facts, log):
    requested = identity.get("figures") or []
    figures = []
    if "receptive_field" in requested:
        figure, facts = study_figures.receptive_field(done, figures_dir / "receptive_field.png")
        figures.append(figure)
        field_facts.extend(facts)
    pictures = [f for f in PICTURES if f in requested]
    if not pictures:
        return figures
    images, labels, class_names = None, None, None
    if "feature_maps" in pictures or "gradcam" in pictures:
        images, labels, class_names = study_figures.test_samples(study_dir, done[0].runs[0].config)
    for s in done:
        if "filters" in pictures:
            figures.append(study_figures.filters(s, loaded[s.name], figures_dir / f"filters_{s.name}.png"))
    for s in done:
        if "feature_maps" in pictures:
            figures.append(study_figures.feature_maps(s, loaded[s.name], images[0],
                                                      figures_dir / f"feature_maps_{s.name}.png"))
    if "gradcam" in pictures:
        figures.append(study_figures.gradcam(done, loaded, images, labels, class_names, figures_dir / "gradcam.png"))
    return figures


def _search_data_description(data):
    size = data.get("image_size")
    limit = data.get("limit_train")
    return (f"{data.get('data_dir') or data.get('dataset') or 'cifar10'}"
            + (f", {limit:,} training images" if isinstance(limit, int) else
               f", {limit:.0%} of the training images" if limit else ", all training images")
            + " (each trial holds out its own validation split)"
            + (f", at {size[0]}x{size[1]}" if size else ""))


def _search_report(doc, study_dir, identity):
    from tuning import searchdir
    from tuning.results import completed, write_report as write_tuning_report

    search_dir = pathlib.Path(study_dir) / "search"
    rows = write_tuning_report(search_dir) if (search_dir / searchdir.PROJECT).is_dir() else []
    done = completed(rows)
    tuning_identity = searchdir.read_identity(search_dir) or {}
    _header(doc, identity, _search_data_description(tuning_identity.get("data") or {}))
    doc.heading("Findings", id="findings-heading")
    doc.items(study_findings.search_findings(rows), id="findings")
    doc.heading("Results", id="results-heading")
    columns = (("trial", "trial"), ("optimizer", "optimizer"), ("lr", "learning rate"), ("batch", "batch"),
               ("split", "validation split"), ("reg", "regulariser"), ("epochs", "epochs"), ("train", "train accuracy"),
               ("val", "validation accuracy"), ("test", "test accuracy"), ("gap", "overfitting gap"),
               ("s", "s/epoch"))
    ranked = sorted(done, key=lambda r: -r["best_val_accuracy"])
    doc.paragraph(f"{len(done)} of {len(rows)} trials completed, best validation accuracy first "
                  "(trials.csv in search/ has every column).")
    doc.table(columns, [{
        "trial": r["trial_id"], "optimizer": r["optimizer"], "lr": f"{r['learning_rate']:g}",
        "batch": r["batch_size"], "split": r["val_split"], "reg": r["regularization"], "epochs": r["epochs_run"],
        "train": _pct(r["best_train_accuracy"]), "val": _pct(r["best_val_accuracy"]), "test": _pct(r["test_accuracy"]),
        "gap": _pts(None if r["best_train_accuracy"] is None else r["best_train_accuracy"] - r["test_accuracy"]),
        "s": _num(r["seconds_per_epoch"], "{:.1f}"),
    } for r in ranked], "results")
    doc.heading("Figures", id="figures")
    for name, caption in TUNING_CAPTIONS.items():
        path = search_dir / searchdir.PLOTS / f"{name}.png"
        if path.exists():
            doc.figure(study_figures.Figure(name.replace("_", "-"), path, caption))
    return [{"trial": r["trial_id"], "optimizer": r["optimizer"], "learning_rate": r["learning_rate"],
             "batch_size": r["batch_size"], "val_split": r["val_split"], "regularization": r["regularization"],
             "epochs": r["epochs_run"], "train_accuracy": r["best_train_accuracy"],
             "val_accuracy": r["best_val_accuracy"], "test_accuracy": r["test_accuracy"],
             "seconds_per_epoch": r["seconds_per_epoch"]} for r in ranked]


def _csv(rows):
    from kerascnn.analysis.tables import csv_text

    columns = list(rows[0]) if rows else ["arm"]
    return csv_text(columns, rows)


def write_report(study_dir, log=print):
    """Write report.md, report.html and results.csv of the study in `study_dir`; return their paths."""
    study_dir = pathlib.Path(study_dir)
    identity = study_folder.read_identity(study_dir)
    doc = Document()
    if identity.get("kind") == "search":
        exact = _search_report(doc, study_dir, identity)
    else:
        exact = _arm_report(doc, study_dir, identity, log)
    return [
        write_text(study_dir / REPORT_MD, doc.markdown(study_dir)),
        write_text(study_dir / REPORT_HTML, doc.html(identity["title"])),
        write_text(study_dir / RESULTS_CSV, _csv(exact)),
    ]
