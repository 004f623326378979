"""Run a study: every planned run through `fit`, or its search through `tune`, then the report.

Each run is an ordinary `fit` run directory under the study folder
(`kerascnn.studies.folder`). Re-running the same command continues: a
finished run is kept, an interrupted one resumes with `fit`'s own resume
(`fit(resume_dir=...)`: weights, optimizer, schedule and data order of its
last finished epoch), a new one starts. A run that diverges or runs out of
memory is recorded as failed and the study goes on with the others; any
other mistake (missing data, ...) stops the study with its one-line message.
A search study runs `tuning.search.run_search`, which resumes on its own.
"""

import dataclasses
import sys

from kerascnn.studies import folder as study_folder
from kerascnn.studies.estimate import Timings, estimate_run, format_duration
from kerascnn.studies.plan import search_request


def check_data(plan, out_dir):
    """Open the data of every distinct data setting once, before the study folder is touched.

    `fit` checks its data before it creates its run directory; a study does
    the same for its folder, so a wrong --data-dir leaves nothing behind.
    """
    from kerascnn.data.choose_source import open_source

    if plan.search is not None:
        configs = [search_request(plan.search, out_dir).base]
    else:
        configs = [r.config for r in plan.runs]
    seen = set()
    for config in configs:
        d = config.data
        key = (d.dataset, d.data_dir, d.image_size, d.skip_bad_images)
        if key not in seen:
            seen.add(key)
            open_source(d.dataset, d.data_dir, d.image_size, d.skip_bad_images, log=None)


def run_study(plan, out_dir, arms=None, log=print, verbose=None):
    """Run (or continue) `plan` in `out_dir`, then write its report; returns the report's paths."""
    selected = plan.select(arms)
    study_folder.check_folder(out_dir, plan)  # a damaged or foreign folder is refused before the data is read
    check_data(plan, out_dir)
    continuing = study_folder.prepare(out_dir, plan)
    study = plan.study
    log(f"{'continuing' if continuing else 'starting'} study {study.name} at budget {plan.budget.name} in {out_dir}")
    for skipped in plan.skipped:
        log(f"arm {skipped.arm} skipped: {skipped.reason}")
    if plan.search is not None:
        from tuning.search import run_search

        run_search(search_request(plan.search, out_dir), log=log, verbose=verbose)
    else:
        if arms:
            extra = sorted({r.arm for r in selected} - set(arms))
            if extra:
                log(f"--arms: also running {', '.join(extra)}, which {'they' if len(arms) > 1 else 'it'} start from")
        for index, run in enumerate(selected, start=1):
            _run_one(plan, run, out_dir, f"[{index}/{len(selected)}]", log, verbose)
    from kerascnn.studies.report import write_report

    paths = write_report(out_dir, log=log)
    log(f"report: {', '.join(str(p) for p in paths)}")
    return paths


def _run_one(plan, run, out_dir, counter, log, verbose):
    from kerascnn.runtime.batch_size import OutOfMemory
    from kerascnn.training.fit import fit
    from kerascnn.training.train import Diverged

    state = study_folder.run_state(out_dir, run.name)
    if state == study_folder.FINISHED:
        log(f"{counter} {run.name}: finished earlier, kept")
        return
    if state == study_folder.FAILED:
        log(f"{counter} {run.name}: failed earlier ({study_folder.failure(out_dir, run.name)}); "
            f"delete {study_folder.failure_path(out_dir, run.name)} and its run folder to try again")
        return
    if run.depends_on is not None and study_folder.run_state(out_dir, run.depends_on) != study_folder.FINISHED:
        log(f"{counter} {run.name}: not started: it starts from {run.depends_on}, which has not finished")
        return
    path = study_folder.run_dir(out_dir, run.name)
    try:
        if state == study_folder.INTERRUPTED:
            log(f"{counter} {run.name}: resuming {path}")
            fit(resume_dir=path, log=log, verbose=verbose)
        else:
            log(f"{counter} {run.name}: training {run.config.model} (seed {run.seed}) in {path}")
            fit(run.config_for(out_dir), log=log, verbose=verbose)
    except (Diverged, OutOfMemory) as e:
        study_folder.record_failure(out_dir, run.name, str(e))
        log(f"{counter} {run.name}: failed: {e}")


def dry_run(plan, out_dir, arms=None, timings_from=("runs",), out=None):
    """Print each run of the plan with its state and estimated time; nothing is trained or written."""
    out = out or sys.stdout
    study = plan.study
    print(f"study {study.name} ({study.title}), budget {plan.budget.name}: {plan.budget.description or '-'}", file=out)
    print(f"folder {out_dir}", file=out)
    for skipped in plan.skipped:
        print(f"  arm {skipped.arm}: skipped, {skipped.reason}", file=out)
    if plan.search is not None:
        return _dry_run_search(plan, out_dir, timings_from, out)
    timings = Timings([*timings_from, study_folder.run_dir(out_dir, "")])
    total, sources = 0.0, {}
    header = f"  {'run':<24} {'model':<16} {'state':<12} {'images x epochs':>17} {'s/epoch':>8} {'time':>8}  estimate from"
    print(header, file=out)
    for run in plan.select(arms):
        state = _state(out_dir, run.name)
        path = study_folder.run_dir(out_dir, run.name)
        done = _epochs_done(path) if state == study_folder.INTERRUPTED else 0
        config = run.config_for(out_dir)
        estimate = estimate_run(config, path, timings, done)
        if state in (study_folder.FINISHED, study_folder.FAILED):
            seconds, note = 0.0, "-"
        else:
            seconds, note = estimate.seconds, estimate.source
            total += seconds
        sources[note] = sources.get(note, 0) + 1
        print(
            f"  {run.name:<24} {config.model:<16} {state:<12} "
            f"{f'{estimate.images_per_epoch:,} x {estimate.epochs_left}':>17} "
            f"{estimate.seconds_per_epoch:>8.1f} {format_duration(seconds):>8}  {note}",
            file=out,
        )
    print(f"  total: about {format_duration(total)} of training and testing left", file=out)
    return 0


def _state(out_dir, name):
    try:
        return study_folder.run_state(out_dir, name)
    except Exception:  # a damaged folder is reported when the study runs
        return "?"


def _epochs_done(path):
    from kerascnn.storage import rundir
    from kerascnn.storage.history import read_history

    return len(read_history(path / rundir.HISTORY))


def _dry_run_search(plan, out_dir, timings_from, out):
    from kerascnn.studies.estimate import split_sizes
    from tuning.search import dry_run as tune_dry_run
    from tuning.spaces import Baseline, enumerate_grid, get_space
    from kerascnn.models import model_defaults

    request = search_request(plan.search, out_dir)
    base = request.base
    defaults = {**model_defaults(base.model), **base.model_options}
    baseline = Baseline.of(base, defaults, base.data.image_size or (32, 32))
    grid = enumerate_grid(get_space(request.space), baseline)
    trials = len(grid) if request.max_trials is None else min(request.max_trials, len(grid))
    timings = Timings(list(timings_from))
    # The study's trials differ in split (0.1 or 0.3) and batch size; the mean split is the estimate.
    estimate = estimate_run(base.replace(data=dataclasses.replace(base.data, val_split=0.2)), None, timings)
    train, _, _ = split_sizes(base)
    print(f"  search {request.space} with the {request.tuner} tuner: {trials} trials of at most {base.epochs} epochs "
          f"on {train:,} images; results in {request.results_dir}", file=out)
    print(f"  per trial about {format_duration(estimate.seconds)} ({estimate.source}); "
          f"total about {format_duration(trials * estimate.seconds)}"
          + (" at most, patience stops trials early" if base.patience else ""), file=out)
    return tune_dry_run(request, out=out)
