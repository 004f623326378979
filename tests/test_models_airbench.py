"""airbench94 (Jordan 2024): the network as published, its identity start, and its recipe run by `fit`."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kerascnn.config import RunConfig
from kerascnn.errors import ConfigError
from kerascnn.layers import GELU, DiracStart
from kerascnn.models import create_model
from kerascnn.models.airbench import CONV_START
from kerascnn.recipes import AIRBENCH_DECAY, AIRBENCH_LR
from kerascnn.storage import rundir
from kerascnn.training import whitening
from kerascnn.training.fit import fit


def test_the_network_is_airbench94s():
    network = create_model("airbench94")
    # airbench94.py's make_net(): 1.97M weights (whiten 300, blocks 37k + 590k + 1.18M, BN, head 2,560).
    assert network.count_params() == 1_975_096
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in network.layers}
    assert shapes["whiten"] == (31, 31, 24) and shapes["block1_pool"] == (15, 15, 64)
    assert shapes["block3_conv2"] == (3, 3, 256) and shapes["head_pool"] == (256,)
    assert network.get_layer("whiten").kernel.shape == (2, 2, 3, 24) and network.get_layer("whiten").use_bias
    convs = [layer for layer in network.layers if layer.name.startswith("block") and "conv" in layer.name
             and isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 6 and not any(layer.use_bias for layer in convs)
    norms = [layer for layer in network.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 6 and {layer.momentum for layer in norms} == {0.6}
    head = network.get_layer("predictions")
    assert not head.use_bias and network.get_layer("logit_scale").scale == pytest.approx(1 / 9)
    gelus = [layer for layer in network.layers if isinstance(layer, GELU)]
    assert len(gelus) == 7 and gelus[0].name == "whiten_gelu"
    with pytest.raises(ConfigError, match="widths must be three positive integers"):
        create_model("airbench94", widths=(64, 256))


def test_dirac_start_is_the_identity_on_the_first_filters_and_pytorchs_uniform_on_the_rest():
    keras.utils.set_random_seed(0)
    kernel = np.asarray(DiracStart()((3, 3, 4, 6)))
    for j in range(4):  # the first c_in filters copy input channel j to output channel j
        expected = np.zeros((3, 3, 4))
        expected[1, 1, j] = 1.0
        np.testing.assert_array_equal(kernel[..., j], expected)
    rest = kernel[..., 4:]
    bound = 1 / np.sqrt(3 * 3 * 4)
    assert np.abs(rest).max() <= bound and np.abs(rest).max() > 0.8 * bound and rest.std() > 0.4 * bound
    narrow = np.asarray(DiracStart()((3, 3, 5, 2)))  # fewer filters than inputs: every filter an identity
    assert narrow[1, 1, 0, 0] == 1 and narrow[1, 1, 1, 1] == 1 and np.count_nonzero(narrow) == 2
    # Two layers start from different draws: each builds its own initializer from the spec.
    a, b = (np.asarray(keras.initializers.get(CONV_START)((3, 3, 4, 8))) for _ in range(2))
    assert not np.array_equal(a[..., 4:], b[..., 4:])


def test_the_recipe_is_airbenchs_in_the_mean_loss_form():
    config = RunConfig.from_flags("airbench94", recipe="fast")
    optim, data = config.optim, config.data
    # 11.5 per 1,024 summed examples at momentum 0.85: 11.5 / (1 + 1 / 0.15) for the mean loss.
    assert AIRBENCH_LR == pytest.approx(1.5) and optim.lr == pytest.approx(1.5)
    # The step's decay at the peak, lr * wd, is airbench's 0.0153 * 1024 / (1024 * (1 + 1 / 0.15)).
    assert optim.lr * optim.weight_decay == pytest.approx(0.0153 / (1 + 1 / 0.15), rel=1e-5)
    assert AIRBENCH_DECAY == pytest.approx(optim.weight_decay, rel=1e-4)
    assert (optim.momentum, optim.nesterov, optim.label_smoothing, optim.final_lr_fraction) == (0.85, True, 0.2, 0.07)
    assert optim.warmup_epochs == pytest.approx(2.3) and config.epochs == 10
    # The triangle 0.2 -> 1 -> 0.07 of the peak; the whitening bias trains its first 3 epochs.
    assert (optim.initial_lr_fraction, config.whiten_bias_epochs) == (0.2, 3)
    assert (optim.lookahead, optim.bn_bias_lr_scale, optim.freeze_bn_scale, config.whiten) == (5, 64.0, True, True)
    assert optim.decay_norm_and_bias  # airbench decays all it trains, the offsets at wd / 64
    assert not RunConfig.from_flags("airbench94", recipe="fast", weight_decay=0.0).optim.decay_norm_and_bias
    assert (data.batch_size, data.translate, data.flip, data.cutout, data.val_split) == (1024, 2, "alternating", 0, 0.0)
    # Turning off what a setting refines drops the refinement; given explicitly, it is refused.
    plain = RunConfig.from_flags("airbench94", recipe="fast", whiten=False, warmup_epochs=0)
    assert (plain.whiten_bias_epochs, plain.optim.initial_lr_fraction) == (0, 0.0)
    with pytest.raises(ConfigError, match="it needs --whiten"):
        RunConfig.from_flags("airbench94", recipe="fast", whiten=False, whiten_bias_epochs=3)
    # --epochs beside it keeps the warm-up at 23% of the run.
    assert RunConfig.from_flags("airbench94", recipe="fast", epochs=20).optim.warmup_epochs == pytest.approx(4.6)


def test_the_whitening_fills_the_2x2_layer_with_its_twelve_components():
    network = create_model("airbench94", widths=(8, 16, 16))
    layer = whitening.first_convolution(network)
    assert layer.name == "whiten"
    images = np.random.default_rng(0).normal(size=(32, 32, 32, 3)).astype("float32")
    done = whitening.whiten_layer(layer, [images])
    assert done["filters"] == 24 and done["patches"] == 32 * 31 * 31
    kernel = layer.kernel.numpy()
    np.testing.assert_array_equal(kernel[..., 12:], -kernel[..., :12])


def test_fit_trains_airbench94_with_its_recipe(tmp_path):
    """The whole recipe (whitening, lookahead, alternating flips, frozen scales, 64x offsets) through `fit`."""
    config = RunConfig.from_flags(
        "airbench94", recipe="fast", dataset="synthetic", limit_train=64, batch_size=32, epochs=2,
        run_dir=str(tmp_path / "run"), precision="float32", model_options={"widths": (8, 16, 16)},
    )
    assert config.optim.lr == pytest.approx(1.5 * 32 / 1024)  # the batch given alone scales the rate
    lines = []
    result = fit(config, log=lines.append, verbose=0)
    recorded = json.loads((tmp_path / "run" / rundir.CONFIG).read_text())
    assert recorded["recipe"] == "fast" and recorded["whiten"] is True and recorded["optim"]["lookahead"] == 5
    assert any(line.startswith("--whiten: whiten's first 24 of 24 filters") for line in lines), lines
    gammas = [layer.gamma for layer in result.model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(gammas) == 6 and all(np.array_equal(g.numpy(), np.ones(g.shape)) for g in gammas)  # frozen at 1
    kernel = result.model.get_layer("whiten").kernel.numpy()
    np.testing.assert_array_equal(kernel[..., 12:], -kernel[..., :12])  # still the whitening after training
    assert np.isfinite(result.metrics["test_accuracy"]) and (tmp_path / "run" / rundir.METRICS).exists()
    # The run's best.keras loads where the serving and export paths load it: with kerascnn.layers
    # imported and no model family (DiracStart and GELU register there).
    loader = ("import sys, keras, kerascnn.layers; m = keras.saving.load_model(sys.argv[1], compile=False); "
              "assert 'kerascnn.models' not in sys.modules; print(m.name)")
    done = subprocess.run([sys.executable, "-c", loader, str(tmp_path / "run" / "best.keras")],
                          capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0 and done.stdout.strip() == "airbench94", done.stderr[-2000:]
