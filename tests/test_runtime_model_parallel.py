"""AlexNet's two towers on two devices (Krizhevsky et al. 2012, section 3.2).

conftest.py splits the CPU into two logical devices, so the towers run on
/cpu:0 and /cpu:1 exactly as they would on two GPUs: placement is read from
the traced train step, and results are compared with the single-device
`alexnet` holding the same weights.
"""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn.runtime import model_parallel as parallel
from kerascnn.cli.app import main
from kerascnn.config import RunConfig
from kerascnn.errors import ConfigError
from kerascnn.training.weight_decay import decay_factors, decay_in_update, factors_of
from kerascnn.models import create_model
from kerascnn.training import compile_model
from kerascnn.training.fit import fit

DEVICES = ("/cpu:0", "/cpu:1")
SHAPE = (32, 32, 3)  # the smallest input the AlexNet builders take: 20M parameters, mostly fc7


def alexnet(**options):
    return create_model("alexnet", num_classes=10, input_shape=SHAPE, init="he_normal", **options)


def batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-2, 2, (n, *SHAPE)).astype("float32"), np.eye(10, dtype="float32")[rng.integers(0, 10, n)]


def tower_of(device):
    return {"CPU:0": 0, "CPU:1": 1}.get(device[-5:])


@pytest.fixture(scope="module")
def models():
    """(single-device alexnet, its two-device model), no dropout: masks are random."""
    single = alexnet(dropout=0.0)
    return single, parallel.build_model_parallel(single, DEVICES)


def test_each_tower_runs_forward_and_backward_on_its_own_device_in_the_train_step(models):
    _, model = models
    compile_model(model, keras.optimizers.SGD(0.01, momentum=0.9))
    model.optimizer.build(model.trainable_variables)
    # The body of fit's compiled step, traced as Keras traces it: placement
    # must survive the Functional model re-running its layers.
    x, y = batch()
    graph = tf.function(model.train_step).get_concrete_function((tf.TensorSpec(x.shape), tf.TensorSpec(y.shape))).graph
    placed = {}
    for op in graph.get_operations():
        if op.type in ("Conv2D", "LRN", "MatMul", "Conv2DBackpropFilter", "Conv2DBackpropInput", "LRNGrad"):
            block = re.search(r"tower[01]_(conv1_2|conv3_5|fc6|fc7)|classifier", op.name).group(0)
            placed.setdefault((op.type, block), set()).add(tower_of(op.device))
    for t in (0, 1):
        # conv1-conv5 and their gradients, LRN 1-2 and its gradient, fc6 and fc7 on device t.
        assert placed[("Conv2D", f"tower{t}_conv1_2")] == {t}
        assert placed[("Conv2D", f"tower{t}_conv3_5")] == {t}
        assert placed[("LRN", f"tower{t}_conv1_2")] == placed[("LRNGrad", f"tower{t}_conv1_2")] == {t}
        assert placed[("Conv2DBackpropFilter", f"tower{t}_conv1_2")] == {t}
        assert placed[("Conv2DBackpropFilter", f"tower{t}_conv3_5")] == {t}
        assert placed[("MatMul", f"tower{t}_fc6")] == placed[("MatMul", f"tower{t}_fc7")] == {t}
    assert placed[("MatMul", "classifier")] == {0}
    # The optimizer's momentum and step arithmetic runs with the weight it updates.
    updates = [op for op in graph.get_operations() if op.type in ("Mul", "Sub") and "sgd" in op.name.lower()]
    assert len(updates) == 3 * len(model.trainable_weights)  # m * momentum, lr * g, their difference
    assert {tower_of(op.device) for op in updates} == {0, 1}
    # Weights live with their tower (so the optimizer updates them there too).
    for block in model.layers:
        for w in block.weights:
            assert tower_of(w.value.device) == (1 if block.name.startswith("tower1") else 0), w.path


def test_logits_and_one_training_step_equal_the_single_device_alexnet(models):
    single, model = models
    x, y = batch()
    single_copy = keras.models.clone_model(single)
    single_copy.set_weights(single.get_weights())
    np.testing.assert_allclose(model(x).numpy(), single_copy(x).numpy(), rtol=1e-5, atol=1e-6)

    # One SGD step each (weight decay included): same loss, same updated weights.
    parallel.to_model_parallel(single_copy, model)
    compile_model(model, decay_in_update(keras.optimizers.SGD(0.1), decay_factors(model, 5e-4)))
    compile_model(single_copy, decay_in_update(keras.optimizers.SGD(0.1), decay_factors(single_copy, 5e-4)))
    # Every kernel decays on both sides: the towers' halves are found inside their blocks.
    assert len(factors_of(model.optimizer)) == 2 * len(factors_of(single_copy.optimizer)) - 1  # one predictions
    loss_parallel = model.train_on_batch(x, y)[0]
    loss_single = single_copy.train_on_batch(x, y)[0]
    assert loss_parallel == pytest.approx(loss_single, rel=1e-5)
    # The placement wrapper, undone after the trace, leaves the decaying step in place for the next trace.
    assert model.optimizer.__dict__["update_step"].__name__ == "decayed_update_step"
    after = keras.models.clone_model(single)
    parallel.to_single_device(model, after)
    moved = 0
    for got, want, before in zip(after.get_weights(), single_copy.get_weights(), single.get_weights()):
        step = np.max(np.abs(want - before))
        moved += step > 0
        # The updates agree to 0.1%, up to the float32 rounding of the weights themselves.
        rounding = 4 * np.finfo(np.float32).eps * np.max(np.abs(before))
        assert np.max(np.abs(got - want)) <= 1e-3 * step + rounding
    assert moved == len(single.get_weights())  # every weight got a gradient


def test_weights_convert_both_ways_by_output_channel_halves():
    single = alexnet(batch_norm=True)
    model = parallel.build_model_parallel(single, DEVICES)
    layers = parallel._tower_layers(model)
    # Grouped conv4 (3, 3, 192, 384): tower 1 holds output channels 192-383.
    kernel = single.get_layer("conv4").kernel.numpy()
    assert kernel.shape == (3, 3, 192, 384)
    np.testing.assert_array_equal(layers["conv4_tower1"].kernel.numpy(), kernel[..., 192:])
    # conv1 and conv3 are not grouped: each tower holds half the kernels, on all inputs.
    assert layers["conv1_tower0"].kernel.shape == (11, 11, 3, 48)
    assert layers["conv3_tower1"].kernel.shape == (3, 3, 256, 192)
    np.testing.assert_array_equal(
        layers["conv3_bn_tower1"].moving_variance.numpy(), single.get_layer("conv3_bn").moving_variance.numpy()[192:]
    )
    # And back: a differently initialised single-device model gets exactly the weights.
    other = alexnet(batch_norm=True)
    parallel.to_single_device(model, other)
    for a, b in zip(other.get_weights(), single.get_weights()):
        np.testing.assert_array_equal(a, b)
    x, _ = batch()
    np.testing.assert_allclose(model(x).numpy(), other(x).numpy(), rtol=1e-5, atol=1e-6)


def test_the_two_device_model_round_trips_through_keras_with_its_placement(models, tmp_path):
    _, model = models
    model.save(tmp_path / "parallel.keras")
    loaded = keras.saving.load_model(tmp_path / "parallel.keras", compile=False)
    assert isinstance(loaded, parallel.ModelParallelModel)
    assert parallel.placement(loaded) == parallel.placement(model)
    for block in loaded.layers:
        for w in block.weights:  # created on the block's device when loading, too
            assert tower_of(w.value.device) == (1 if block.name.startswith("tower1") else 0), w.path
    x, _ = batch()
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-7)


def plan(**flags):
    return parallel.plan(RunConfig.from_flags(flags.pop("model", "alexnet"), model_parallel=True, **flags))


def test_only_the_two_tower_alexnet_on_two_devices():
    config, placement = plan(cpu_replicas=2, jit="auto")
    assert placement.devices == DEVICES and config.jit is False  # XLA would put the step on one device
    assert placement.strategy()[0].num_replicas_in_sync == 1  # the model is split, not the batch
    for flags, message in (
        ({"model": "vgg11", "cpu_replicas": 2}, "vgg11 has none"),
        ({"cpu_replicas": 2, "model_options": {"towers": 1}}, "towers=1"),
        ({"cpu_replicas": 1}, "--cpu-replicas 2"),
        ({}, "two devices"),  # no GPUs here
        ({"cpu_replicas": 2, "jit": True}, "--jit"),
    ):
        with pytest.raises(ConfigError, match=message):
            plan(**flags)


def test_the_cli_refuses_other_models_in_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "vgg11", "--model-parallel", "--cpu-replicas", "2", "--dataset", "synthetic"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model-parallel" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "runs").exists()


def test_fit_model_parallel_writes_a_single_device_checkpoint_that_evaluates(tmp_path):
    config = RunConfig.from_flags(
        "alexnet", model_parallel=True, cpu_replicas=2, dataset="synthetic", limit_train=32, batch_size=16,
        epochs=1, run_dir=str(tmp_path / "run"),
    )
    result = fit(config, log=lambda *_: None, verbose=0)
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["model_parallel"] is True
    resolved = saved["resolved"]
    assert resolved["replicas"] == 1 and resolved["global_batch"] == 16
    blocks = resolved["model_parallel"]["blocks"]
    assert blocks["tower1_conv3_5"] == {
        "device": "/cpu:1", "layers": ["conv3_tower1", "conv4_tower1", "conv5_tower1", "pool5_tower1"]
    }
    assert blocks["classifier"]["device"] == "/cpu:0"
    # best.keras is the ordinary alexnet, so evaluate / export / predict need nothing new.
    best = keras.saving.load_model(result.run_dir / "best.keras", compile=False)
    assert best.name == "alexnet" and not any(isinstance(l, parallel.OnDevice) for l in best.layers)
    assert best.get_layer("norm1").groups == 2
    from kerascnn.serving.evaluate import evaluate

    scores = evaluate(result.run_dir, None, None, 64, 64)
    assert scores["images"] == 64 and 0.0 <= scores["accuracy"] <= 1.0
