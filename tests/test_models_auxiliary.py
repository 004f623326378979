"""Auxiliary classifiers: weighted in the training loss, absent from checkpoints and exports."""

import json

import keras
import numpy as np
import pytest

from kerascnn import registry
from kerascnn.storage import rundir
from kerascnn.models.auxiliary import AUX_LOSS_WEIGHT, inference_model, training_model
from kerascnn.config import RunConfig
from kerascnn.training import compile_model
from kerascnn.training.fit import fit


def tiny_aux(num_classes=10, input_shape=(32, 32, 3), name="tiny_aux"):
    """A small network with outputs [main, aux1, aux2], like GoogLeNet's.

    Its logits are float32 under mixed precision, as every registered model's
    (`models.common.classifier_logits`): the top-5 metric needs float32.
    """
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    main = keras.layers.Dense(num_classes, dtype="float32", name="predictions")(x)
    aux1 = keras.layers.Dense(num_classes, dtype="float32", name="aux1_predictions")(x)
    aux2_fc = keras.layers.Dense(16, name="aux2_fc")(x)
    aux2 = keras.layers.Dense(num_classes, dtype="float32", name="aux2_predictions")(aux2_fc)
    return keras.Model(inputs, [main, aux1, aux2], name=name)


def batch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(8) % 10, 10)
    return x, y


def test_training_loss_is_main_plus_weighted_auxiliary_losses():
    network = tiny_aux()
    model = training_model(network)
    compile_model(model, keras.optimizers.SGD(0.01), num_classes=10)
    x, y = batch()
    main, aux1, aux2 = network(x, training=True)
    ce = keras.losses.CategoricalCrossentropy(from_logits=True)
    expected = float(ce(y, main) + AUX_LOSS_WEIGHT * (ce(y, aux1) + ce(y, aux2)))
    got = float(model.compute_loss(x, y, list(network(x, training=True))))
    assert got == pytest.approx(expected, rel=1e-5)
    assert AUX_LOSS_WEIGHT == 0.3


def test_evaluation_and_metrics_see_only_the_main_head():
    network = tiny_aux()
    model = training_model(network)
    compile_model(model, keras.optimizers.SGD(0.01), num_classes=10)
    x, y = batch()
    logs = model.train_on_batch(x, y, return_dict=True)
    assert "accuracy" in logs and not any("aux" in k for k in logs)
    assert model.predict(x, verbose=0).shape == (8, 10)
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    ce = keras.losses.CategoricalCrossentropy(from_logits=True)
    assert result["cross_entropy"] == pytest.approx(float(ce(y, network(x)[0])), rel=1e-5)


def test_inference_model_drops_the_auxiliary_heads_and_shares_weights():
    network = tiny_aux()
    single = inference_model(network)
    assert len(single.outputs) == 1
    names = [layer.name for layer in single.layers]
    assert "predictions" in names and not any(n.startswith("aux") for n in names)
    assert single.get_layer("conv") is network.get_layer("conv")
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert inference_model(plain) is plain and training_model(plain) is plain


def test_fit_and_export_of_an_auxiliary_network_keep_only_the_main_classifier(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._MODELS, "tiny_aux", tiny_aux)
    config = RunConfig.from_flags(
        "tiny_aux", dataset="synthetic", limit_train=128, batch_size=32, epochs=2,
        run_dir=str(tmp_path / "run"), export=True, export_dir=str(tmp_path / "saved"),
    )
    result = fit(config, log=lambda *_: None, verbose=0)
    best = keras.saving.load_model(result.run_dir / rundir.BEST, compile=False)
    assert len(best.outputs) == 1 and not any(l.name.startswith("aux") for l in best.layers)
    history = (result.run_dir / rundir.HISTORY).read_text().splitlines()[0]
    assert "val_accuracy" in history and "aux" not in history
    metrics = json.loads((result.run_dir / rundir.METRICS).read_text())
    assert metrics["params"] == inference_model(tiny_aux()).count_params()
    assert (result.export_dir / "saved_model.pb").exists()
