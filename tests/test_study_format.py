"""Study files, plans, estimates and findings: everything about studies that trains nothing."""

import json
import os
import textwrap

import pytest

from kerascnn.cli.app import main
from kerascnn.studies import findings
from kerascnn.studies.catalog import find_study, shipped_names
from kerascnn.studies.folder import prepare
from kerascnn.studies.format import StudyFileError, parse_study
from kerascnn.studies.plan import plan_study
from kerascnn.studies.results import ArmSummary
from kerascnn.storage import rundir

GOOD = textwrap.dedent(
    """
    [study]
    name = "mine"
    title = "Two small VGGs"
    seeds = [0, 1]
    baseline = "a"

    [settings]
    lr = 0.02
    model_options = { dropout = 0.0 }

    [budget.smoke]
    dataset = "synthetic"
    epochs = 1
    lr = 0.05
    model_options = { width_multiplier = 0.25, aux_logits = false }

    [[arm]]
    name = "a"
    model = "vgg8"
    epochs = 3

    [[arm]]
    name = "b"
    model = "vgg11"
    init_from = "arm:a"
    augment = "none"
    """
)


def bad(replace_from, replace_to):
    return GOOD.replace(replace_from, replace_to, 1)


BAD_FILES = [
    ("[study]\nname = \"x\"\ntitle = ", "not valid TOML"),
    (bad("[study]", "[studdy]"), "studdy: unknown key"),
    (bad('title = "Two small VGGs"', ""), "study.title: missing"),
    (bad('name = "mine"', 'name = "my study"'), "study.name: 'my study' must start"),
    (bad('model = "vgg8"', 'model = "vgg88"'), "arm[1].model: unknown model 'vgg88' (did you mean vgg8?)"),
    (bad('epochs = 3', 'epochs = "three"'), "arm[1].epochs: must be an integer"),
    (bad('epochs = 3', 'epochs = 0'), "arm[1].epochs: epochs must be a positive integer"),
    (bad('epochs = 3', 'lr = -1.0'), "arm[1].lr: lr must be a positive number"),
    (bad('epochs = 3', 'optimiser = "sgd"'), "arm[1].optimiser: unknown key (did you mean optimizer?)"),
    (bad('init_from = "arm:a"', 'init_from = "arm:c"'), "arm[2].init_from: 'arm:c' must name an arm listed before"),
    (bad('augment = "none"', 'augment = "mixup"'), "arm[2].augment: unknown augmentation preset 'mixup'"),
    (bad('seeds = [0, 1]', 'seeds = [0, 0]'), "study.seeds: names a seed twice"),
    (bad('baseline = "a"', 'baseline = "z"'), "study.baseline: 'z' is not the name of an arm"),
    (bad('name = "b"', 'name = "a"'), "arm[2].name: arm 'a' is named twice"),
    (bad('lr = 0.05', 'lr = "fast"'), "budget.smoke.lr: must be a number"),
    (bad('model_options = { dropout = 0.0 }', 'model_options = { use_lrn = true }'),
     "settings.model_options.use_lrn: model vgg8 takes no option 'use_lrn'"),
    (bad('[study]', '[study]\nfigures = ["saliency"]'), "study.figures[0]: unknown figure 'saliency'"),
    (bad('[[arm]]', '[search]\nmodel = "vgg8"\n\n[[arm]]'), "search: is for search studies"),
    (GOOD.split("[[arm]]")[0], "arm: missing"),
]


@pytest.mark.parametrize("text, message", BAD_FILES, ids=[m.split(":")[0] for _, m in BAD_FILES])
def test_a_bad_study_file_is_one_line_naming_the_key_exit_2_and_writes_nothing(text, message, tmp_path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["study", str(path), "--budget", "smoke", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kerascnn study: error: study file mine.toml: "), err
    assert message in err, err
    assert not out.exists()


def test_unknown_study_budget_and_arm_are_one_line_each(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    for argv, message in (
        (["study", "no-such-study"], "no study 'no-such-study': name a shipped study (alexnet-vs-vgg, "),
        (["study", str(path), "--budget", "huge"], "study mine has no budget 'huge'; its budgets: smoke"),
        (["study", str(path), "--budget", "smoke", "--arms", "a,c"], "--arms: study mine has no arm 'c'"),
        (["study", str(tmp_path / "missing.toml")], "does not exist"),
    ):
        assert main(argv + ["--out", str(tmp_path / "out"), "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", shipped_names())
def test_every_shipped_study_plans_at_every_budget(name):
    study = find_study(name)
    assert set(study.budgets) == {"smoke", "short", "full"} and study.title and study.question
    for budget in study.budgets:
        plan = plan_study(study, budget, environ={})
        if study.kind == "search":
            assert plan.search["model"] == "alexnet_cifar" and plan.search["space"] == "seed-grid"
            continue
        assert plan.runs and {r.arm for r in plan.runs} | {s.arm for s in plan.skipped} == {a.name for a in study.arms}
        if budget == "smoke":  # tiny: generated data, one epoch, a few dozen images
            assert all(r.config.data.dataset == "synthetic" and r.config.epochs == 1 for r in plan.runs)
            assert all(r.config.data.limit_train <= 64 for r in plan.runs)
        if budget == "short":  # a subset of CIFAR-10: what a 2-core CPU finishes in about an hour
            assert all(r.config.data.limit_train <= 10000 for r in plan.runs)


def test_settings_layer_study_arm_budget_then_the_command_line(tmp_path):
    study = parse_study(GOOD, "mine.toml")
    plan = plan_study(study, "smoke", data_dir=str(tmp_path))
    a0, a1, b0, b1 = plan.runs
    assert [r.name for r in plan.runs] == ["a-seed0", "a-seed1", "b-seed0", "b-seed1"]
    assert a0.config.optim.lr == 0.05  # budget over [settings]
    assert a0.config.epochs == 1  # budget over the arm
    # aux_logits: vgg8 has none; conv_init: vgg8's default recipe (scratch), under the study's options
    assert a0.config.model_options == {"dropout": 0.0, "width_multiplier": 0.25, "conv_init": "fan_in"}
    assert a0.config.recipe == "scratch"
    assert a0.config.data.data_dir == str(tmp_path) and a0.config.data.dataset is None  # --data-dir wins
    assert b1.depends_on == "a-seed1" and b1.config_for(tmp_path).init_from == str(tmp_path / "runs" / "a-seed1")
    assert [r.name for r in plan.select(["b"])] == ["a-seed0", "a-seed1", "b-seed0", "b-seed1"]
    assert [r.name for r in plan.select(["a"])] == ["a-seed0", "a-seed1"]


def test_an_arm_whose_weights_are_missing_is_skipped_with_the_reason(tmp_path):
    study = find_study("auxiliary")
    plan = plan_study(study, "smoke", environ={})
    assert {s.arm for s in plan.skipped} == {"pretrained", "scratch"}
    assert all("KERASCNN_GOOGLENET_WEIGHTS is not set" in s.reason for s in plan.skipped)
    weights = tmp_path / "googlenet.keras"
    weights.write_bytes(b"")
    plan = plan_study(study, "smoke", environ={"KERASCNN_GOOGLENET_WEIGHTS": str(weights)})
    assert not plan.skipped and plan.run("pretrained-seed0").config.weights == str(weights)


def test_a_folder_holding_another_study_run_is_refused(tmp_path):
    study = parse_study(GOOD, "mine.toml")
    out = tmp_path / "study"
    assert prepare(out, plan_study(study, "smoke")) is False
    assert prepare(out, plan_study(study, "smoke")) is True  # the same study: continue
    with pytest.raises(StudyFileError.__mro__[1], match=r"other settings \(data.data_dir: None then"):
        prepare(out, plan_study(study, "smoke", data_dir=str(tmp_path)))
    changed = parse_study(GOOD.replace("lr = 0.05", "lr = 0.07"), "mine.toml")
    with pytest.raises(StudyFileError.__mro__[1], match=r"optim.lr: 0.05 then, 0.07 now"):
        prepare(out, plan_study(changed, "smoke"))


def _fake_run(path, model, seconds, train, precision="float32"):
    """A finished run directory as `fit` leaves it, for the estimate (no training)."""
    path.mkdir(parents=True)
    rundir.write_json(path / rundir.CONFIG, {
        "model": model, "precision": precision, "model_options": {"width_multiplier": 1.0},
        "resolved": {"image_shape": [32, 32, 3], "num_train": train},
    })
    rundir.write_json(path / rundir.METRICS, {"test_accuracy": 0.5})
    (path / rundir.HISTORY).write_text("epoch,epoch_seconds\n0,99.0\n" + "".join(
        f"{i},{seconds}\n" for i in range(1, 4)))


def test_the_dry_run_estimates_from_measured_runs_and_says_where_from(tmp_path, capsys):
    timings = tmp_path / "runs"
    _fake_run(timings / "old-alexnet", "alexnet_cifar", seconds=30.0, train=10000)  # 3 ms per image
    out = tmp_path / "out"
    argv = ["study", "augmentation", "--budget", "short", "--out", str(out), "--dry-run",
            "--timings-from", str(timings), "--dataset", "cifar10"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    run_lines = [line for line in text.splitlines() if "-seed" in line]
    assert len(run_lines) == 6 and not out.exists()
    # 5,000 training images x 30 epochs at 3 ms, plus validation and the two test passes at a third.
    # precision: auto on this machine may not be float32, so either source is allowed, but it is named.
    for line in run_lines:
        assert "5,000 x 30" in line
        assert ("measured: " + str(timings / "old-alexnet")) in line or "reference: alexnet_cifar" in line
    assert "total: about" in text


def test_the_dry_run_of_the_grid_lists_its_48_configurations(tmp_path, capsys):
    assert main(["study", "grid", "--budget", "short", "--dataset", "cifar10", "--dry-run", "--out",
                 str(tmp_path / "g")]) == 0
    text = capsys.readouterr().out
    assert "48 trials of at most 8 epochs on 1,500 images" in text
    assert "alexnet_cifar, space seed-grid: 48 configurations" in text


def summary(name, tests, gap=0.1, seconds=10.0, params=1000):
    s = ArmSummary(name, name.upper(), "m", [None] * len(tests), len(tests))
    s.tests = tuple(tests)
    s.test_mean = sum(tests) / len(tests)
    s.test_range = max(tests) - min(tests) if len(tests) > 1 else None
    s.gap_mean, s.seconds_per_epoch, s.params = gap, seconds, params
    return s


def test_findings_name_the_winner_and_judge_the_difference_against_the_seed_spread():
    a = summary("a", [0.80, 0.82], gap=0.05, seconds=10.0, params=1000)
    b = summary("b", [0.70, 0.71], gap=0.20, seconds=25.0, params=4000)
    c = summary("c", [0.79, 0.85])
    found = findings.arm_findings([b, a, c], baseline="b")
    assert found[0].startswith("C won with 82.0% mean test accuracy over 2 seeds, 1.0 points above A (81.0%)")
    assert "within the seed spread (6.0 points" in found[0]
    assert found[1].startswith("B came last with 70.5%") and "larger than the seed spread" in found[1]
    assert any(f.startswith("A against the baseline B: +10.5 points") and "larger than the seed spread" in f
               for f in found)
    assert any("largest for B (+20.0 points)" in f for f in found)
    assert any("B took 2.5x as long per epoch as A" in f for f in found)
    single = findings.arm_findings([summary("a", [0.6]), summary("b", [0.5])])
    assert "fewer than two seeds" in single[0]


def test_search_findings_rank_by_validation_and_measure_each_factor():
    rows = []
    for i, (opt, reg, test) in enumerate([("sgd", "dropout", 0.6), ("sgd", "batch_norm", 0.7),
                                          ("adam", "dropout", 0.4), ("adam", "batch_norm", 0.5)]):
        rows.append({"trial_id": str(i), "optimizer": opt, "learning_rate": 0.01, "batch_size": 32,
                     "val_split": 0.1, "regularization": reg, "test_accuracy": test,
                     "best_val_accuracy": test + 0.01})
    found = findings.search_findings(rows)
    assert found[0].startswith("The best of 4 trials by validation accuracy is trial 1")
    assert any(f.startswith("Optimizer: mean test accuracy 65.0% with sgd against 45.0% with adam") for f in found)
    assert found[-1].startswith("The optimizer matters most")


def test_the_shipped_files_are_package_data():
    import tomllib

    pyproject = tomllib.loads(open(os.path.join(os.path.dirname(__file__), "..", "pyproject.toml")).read())
    assert pyproject["tool"]["setuptools"]["package-data"]["kerascnn.studies"] == ["files/*.toml"]
    assert json.dumps(shipped_names()) == json.dumps(
        ["alexnet-vs-vgg", "augmentation", "auxiliary", "grid", "lrn", "vgg-depth"])


def test_missing_data_is_one_line_and_leaves_no_study_folder(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["study", "alexnet-vs-vgg", "--budget", "smoke", "--data-dir", str(tmp_path / "nowhere"), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere does not exist" in err, err
    assert not out.exists()


def test_a_run_that_diverges_is_recorded_and_the_study_goes_on(tmp_path, monkeypatch, capsys):
    """The runner's handling of a failed arm (fit itself is replaced: nothing trains)."""
    import importlib

    from kerascnn.training.train import Diverged

    tried = []

    def diverging_fit(config=None, resume_dir=None, **kwargs):
        tried.append(config.run_dir)
        raise Diverged(f"the loss became nan at epoch 1, batch {len(tried)}; training stopped")

    monkeypatch.setattr(importlib.import_module("kerascnn.training.fit"), "fit", diverging_fit)
    path = tmp_path / "mine.toml"
    path.write_text(GOOD.replace("seeds = [0, 1]", "seeds = [0]"))
    out = tmp_path / "out"
    argv = ["study", str(path), "--budget", "smoke", "--out", str(out), "--arms", "a"]
    assert main(argv) == 0
    assert len(tried) == 1 and "a-seed0: failed: the loss became nan at epoch 1, batch 1" in capsys.readouterr().out
    assert (out / "runs" / "a-seed0.failed").read_text().startswith("the loss became nan")
    report = (out / "report.md").read_text()
    assert "| a-seed0 | 0 | failed: the loss became nan at epoch 1, batch 1; training stopped | - |" in report
    assert "No arm has finished yet" in report
    assert main(argv) == 0 and len(tried) == 1  # not retried
    assert "a-seed0: failed earlier" in capsys.readouterr().out
