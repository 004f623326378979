"""The command line: start-up and `fit` in real subprocesses, the commands after it and bad input in-process."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from kerascnn.cli.app import main

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_cli(*args, cwd, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, str(REPO / "main.py"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def write_png(path, colour, size=(32, 32)):
    Image.fromarray(np.full((*size, 3), colour, np.uint8)).save(path)
    return path


def test_list_prints_every_model_and_keeps_the_terminal_clean(tmp_path):
    out = run_cli("list", cwd=tmp_path)
    assert out.returncode == 0
    assert out.stderr == ""  # no TensorFlow start-up noise
    lines = out.stdout.splitlines()
    assert any(line.startswith("vgg19_bn ") for line in lines)
    assert all(len(line.split()) > 1 for line in lines)


def test_fit_evaluate_export_predict_end_to_end(tmp_path, monkeypatch, capfd):
    # `fit` as a user runs it: its own interpreter, exit status and terminal.
    fit = run_cli(
        "fit", "vgg11", "--dataset", "synthetic", "--epochs", "1", "--limit-train", "128",
        "--batch-size", "32", "--width-multiplier", "0.25", "--run-dir", "run",
        cwd=tmp_path,
    )
    assert fit.returncode == 0, fit.stderr
    assert "Traceback" not in fit.stderr
    assert "test accuracy" in fit.stdout

    # The commands that read its run: the same `main()` that main.py calls, in
    # this process (each interpreter costs ~7.5 CPU s of TensorFlow start-up;
    # the start-up's quiet terminal is checked by the `list` test above), their
    # output read at the file descriptors as a terminal would see it.
    monkeypatch.chdir(tmp_path)

    def command(*argv):
        capfd.readouterr()
        code = main([str(a) for a in argv])
        out, err = capfd.readouterr()
        assert code == 0, err
        assert "Traceback" not in err
        return out

    result = json.loads(command("evaluate", "run", "--json", "--flip-shift"))
    assert result["images"] == 500 and result["data"] == "synthetic"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # The serving path and Keras' own evaluation agree on the same test set, plain and with flips
    # (mirrors of the raw images here, of the normalised ones in fit).
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-3)
    assert result["with_flips"]["accuracy"] == pytest.approx(metrics["test_flip_accuracy"], abs=1e-3)
    assert result["with_flips_and_shifts"]["images"] == 500

    command("export", "run")
    version = tmp_path / "saved_models" / "vgg11" / "1"
    assert (version / "saved_model.pb").exists()

    assert json.loads(command("evaluate", version, "--json", "--limit", "200"))["images"] == 200

    a = write_png(tmp_path / "a.png", (200, 30, 30))
    b = write_png(tmp_path / "b.png", (10, 10, 240), size=(50, 70))
    ranked = json.loads(command("predict", version, a, b, "--top-k", "3", "--json"))
    assert set(ranked) == {str(a), str(b)}
    probs = [entry["probability"] for entry in ranked[str(a)]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


# --- bad input: one line on stderr, exit 2, nothing written -----------------


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def assert_user_error(capsys, argv, fragment, workdir):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and fragment in lines[0], lines[0]
    assert not (workdir / "runs").exists() and not (workdir / "saved_models").exists()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["fit", "vgg17", "--dataset", "synthetic"], "(did you mean vgg19?); available models: airbench94, alexnet"),
        (["fit", "vgg11", "--batch-size", "0"], "--batch-size must be a positive integer or auto"),
        (["fit", "vgg11", "--epochs", "-1"], "--epochs must be a positive integer"),
        (["fit", "vgg11", "--val-split", "1.5"], "--val-split must be a fraction"),
        (["fit", "vgg11", "--image-size", "abc"], "--image-size"),
        (["fit", "vgg11", "--dataset", "synthetic", "--devices", "3"], "GPU"),
        (["fit"], "name a model"),
        (["fit", "--resume", "no-such-run"], "does not exist"),
        (["fit", "--resume", "no-such-run", "--config", "no-such-run"], "give one of them"),
        (["fit", "--config", "no-such-run", "--seed", "1"], "does not exist"),
        (["predict", "no-such-export", "no-such-folder/"], "does not exist"),
        (["export", "no-such-run", "--calibration-images", "10"], "go with --format tflite"),
        (["export", "no-such-run", "--format", "tflite", "--data-dir", "x"], "add --quantize int8"),
        (["export", "no-such-run", "--format", "tflite", "--serving-precision", "trained"], "goes with a SavedModel"),
        (["export", "no-such-run", "--serving-precision", "float16"], "--serving-precision"),
        (["fit", "vgg11", "--serving-precision", "bfloat16"], "add --export"),
        (["fit", "vgg11", "--export", "--serving-precision", "int4"], "--serving-precision"),
        (["tune", "vgg11", "--serving-precision", "bfloat16"], "add --export"),
        (["evaluate", "no-such-run"], "does not exist"),
        (["export", "no-such-run"], "does not exist"),
        (["predict", "no-such-export", "x.png"], "x.png"),
        (["fit", "vgg11", "--data-dir", "no-such-folder"], "no-such-folder"),
        (["fit", "vgg11", "--dataset", "cifar11"], "cifar11"),
        (["fit", "vgg11", "--augment", "mixup"], "--augment"),
        (["fit", "vgg11", "--random-erasing", "1.5"], "--random-erasing must be a probability"),
        (["fit", "vgg11", "--cutout", "-3"], "--cutout must be an integer >= 0"),
        (["fit", "vgg11", "--pca-sigma", "-1"], "--pca-sigma must be a number >= 0, got '-1'"),
        (["fit", "vgg11", "--cpu-replicas", "0"], "--cpu-replicas must be a positive integer"),
        (["fit", "vgg11", "--batch-size", "huge"], "--batch-size"),
        (["fit", "vgg11", "--workers", "localhost:1,localhost:2"], "--worker-index"),
        (["fit", "vgg11", "--dataset", "synthetic", "--workers", "a:1", "--worker-index", "0"], "--workers"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, fragment, capsys, workdir):
    assert_user_error(capsys, argv, fragment, workdir)


def test_empty_data_folder(capsys, workdir):
    (workdir / "empty").mkdir()
    assert_user_error(capsys, ["fit", "vgg11", "--data-dir", "empty"], "empty", workdir)


def test_corrupt_image_is_named(capsys, workdir):
    for split in ("train", "test"):
        for cls, colour in (("cat", (200, 0, 0)), ("dog", (0, 0, 200))):
            folder = workdir / "pics" / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                write_png(folder / f"{i}.png", colour)
    (workdir / "pics" / "train" / "dog" / "broken.jpg").write_bytes(b"this is not a jpeg")
    assert_user_error(capsys, ["fit", "vgg11", "--data-dir", "pics", "--epochs", "1"], "broken.jpg", workdir)


def test_predict_without_a_model_says_what_to_pass(capsys, workdir):
    # (A corrupt image among others is reported and skipped: tests/test_serving_tflite.py.)
    (workdir / "bad.png").write_bytes(b"\x89PNG garbage")
    assert_user_error(capsys, ["predict", str(workdir), "bad.png"], "neither an export", workdir)


def test_tfds_without_network_says_what_to_do(tmp_path):
    # A closed local port as proxy: fails fast here and on machines with a network.
    proxy = "http://127.0.0.1:9"
    env = {
        "TFDS_DATA_DIR": str(tmp_path / "tfds"),
        "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "https_proxy": proxy,
    }
    out = run_cli("fit", "vgg11", "--dataset", "mnist", "--epochs", "1", cwd=tmp_path, env=env)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "--data-dir" in lines[0] and "--dataset synthetic" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_the_readme_has_a_section_and_an_example_for_every_command():
    import re

    from kerascnn.cli.app import build_parser

    parser = build_parser()
    commands = set(next(a for a in parser._actions if a.dest == "command").choices)
    readme = (REPO / "README.md").read_text()
    headings = {name for line in re.findall(r"^### (.+)$", readme, re.M) for name in re.findall(r"`([a-z-]+)`", line)}
    examples = set(re.findall(r"^python main\.py ([a-z-]+)", readme, re.M))
    assert commands <= headings, f"commands without a README section: {sorted(commands - headings)}"
    assert commands <= examples, f"commands without a README example: {sorted(commands - examples)}"
    assert examples <= commands, f"README examples of commands that do not exist: {sorted(examples - commands)}"
