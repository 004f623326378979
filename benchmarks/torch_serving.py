"""The PyTorch side of `benchmarks/serving_latency.py`: a reference model served as kerascnn's export serves.

The timed call is what the SavedModel's `serve` signature does, in PyTorch:
uint8 images [N, H, W, 3] in, `(x - mean) / std` per channel (one multiply-add,
as `kerascnn.data.preprocessing`), the network in eval mode, softmax, the
probabilities back as a NumPy array; under `torch.inference_mode()`, all CPU
threads, in one of `torch_reference.MODES`:

- channels_last: the uint8 NHWC batch permuted to NCHW is already
  channels_last in memory, so the float copy keeps that layout and the model
  is converted to it; the other modes make the input contiguous NCHW;
- bf16: the network under `torch.autocast("cpu", dtype=torch.bfloat16)`;
- bf16_weights (`BF16_WEIGHTS`, serving only): the network converted to
  bfloat16 (`model.to(torch.bfloat16)`, the normalised input cast to it),
  what a PyTorch user ships to serve in bfloat16 without autocast's per-call
  casts of every weight; the counterpart of kerascnn's
  `export --serving-precision bfloat16`;
- compile: the whole call (preprocessing, network, softmax) through
  `torch.compile(dynamic=False)`, one static graph per batch size;
- int8 (`INT8`, serving only, alone): PyTorch's post-training static
  quantization, what a PyTorch user ships for int8 inference on a CPU: FX
  graph mode with the x86 backend's default configuration (fbgemm and oneDNN
  kernels, per-channel symmetric int8 weights, per-tensor uint8 activations
  with histogram observers), calibrated on the first `CALIBRATION_IMAGES`
  of the timed images; the normalisation stays in float before the graph's
  first quantize, as the TFLite int8 export quantizes the normalised input.

`Server` runs it in its own process (`torch_reference.Child`), which loads the
state dict the Keras model was given, warms every batch size up (compiling)
and times its own calls (a pipe round trip would add ~0.1 ms to a batch-1
call), so the figures are the call alone.
"""

import os
import time
import warnings

import numpy as np
import torch

import torch_reference

INT8 = "int8"
CALIBRATION_IMAGES = 64
BF16_WEIGHTS = "bf16_weights"
# Every float mode serving_latency.py times by default: the training modes and the bfloat16-weight ones.
SERVING_MODES = torch_reference.MODES + (
    BF16_WEIGHTS, f"channels_last+{BF16_WEIGHTS}", f"compile+channels_last+{BF16_WEIGHTS}",
)


def parse_serving_mode(mode):
    """The features of a serving mode: `torch_reference.parse_mode`'s, and `bf16_weights`; ValueError otherwise."""
    parts = mode.split("+")
    rest = [part for part in parts if part != BF16_WEIGHTS]
    if len(rest) < len(parts) and "bf16" in rest:
        raise ValueError(f"mode {mode!r} has bf16 autocast and bfloat16 weights; pick one")
    features = torch_reference.parse_mode("+".join(rest) if rest else torch_reference.FLOAT32)
    return features | {BF16_WEIGHTS} if len(rest) < len(parts) else features


def serving_mode_flag(text):
    """argparse `type=` of serving_latency's `--torch-modes`: a serving mode or `int8`, else argparse's one-line error."""
    return torch_reference.mode_flag(text, also=(INT8,), parse=parse_serving_mode)


def quantize_int8(model, calibration):
    """`model` (float32, eval mode) quantized to int8 by FX graph mode, calibrated on `calibration` (NCHW, normalised)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    # torch.ao.quantization announces its move to torchao at every call; it works
    # in this PyTorch, and the announcement is not the benchmark's output.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), example_inputs=(calibration[:1],))
        with torch.no_grad():  # observers update their buffers in place: not under inference_mode
            prepared(calibration)
        return convert_fx(prepared)


class Predictor:
    """The served model of one mode: uint8 NHWC images -> probabilities."""

    def __init__(self, name, state_dict, images, mean, std, mode, model_options=None, threads=None):
        torch.set_num_threads(threads or os.cpu_count())
        self.features = frozenset() if mode == INT8 else parse_serving_mode(mode)
        model = torch_reference.create(name, **(model_options or {}))
        model.load_state_dict(torch.load(state_dict, map_location="cpu", weights_only=True))
        model.eval()
        self.dtype = torch.bfloat16 if BF16_WEIGHTS in self.features else torch.float32
        model = model.to(self.dtype)
        self.channels_last = "channels_last" in self.features
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.scale = torch.tensor([1.0 / s for s in std]).view(1, 3, 1, 1)
        self.shift = torch.tensor([-m / s for m, s in zip(mean, std)]).view(1, 3, 1, 1)
        self.images = torch.from_numpy(np.load(images))
        self.failure = None
        if mode == INT8:
            try:
                self.model = quantize_int8(model, self._normalised(self.images[:CALIBRATION_IMAGES]))
            except Exception as e:  # FX tracing and the quantized kernels raise many types
                self.failure = f"unavailable: {torch_reference.one_line(e)}"
        self._call = torch.compile(self._predict, dynamic=False) if "compile" in self.features else self._predict

    def _normalised(self, images):
        """uint8 NHWC images -> (x - mean) / std as float NCHW (channels_last in memory for that mode)."""
        x = images.permute(0, 3, 1, 2).float()  # NHWC memory: channels_last strides already
        if not self.channels_last:
            x = x.contiguous()
        return (x * self.scale + self.shift).to(self.dtype)

    def _logits(self, images):
        x = self._normalised(images)
        with torch_reference.autocast(self.features):
            return self.model(x).float()

    def _predict(self, images):
        return torch.softmax(self._logits(images), dim=1)

    def predict(self, images):
        with torch.inference_mode():
            return self._call(images).numpy()

    def logits(self, images):
        """The network's logits, uncompiled (the comparison of weights, not a timing)."""
        with torch.inference_mode():
            return self._logits(images).numpy()

    def warm_up(self, batch_sizes, calls=None):
        """None, or "unavailable: <reason>" when the mode fails on this machine.

        `calls` per batch size: by default 3 with torch.compile (compiling each size), else 1.
        """
        calls = calls or (3 if "compile" in self.features else 1)
        if self.failure:
            return self.failure
        try:
            for n in batch_sizes:
                for _ in range(calls):
                    self.predict(self.images[:n])
        except Exception as e:  # Inductor, oneDNN and autocast raise many types
            return f"unavailable: {torch_reference.one_line(e)}"
        return None

    def timings(self, batch, calls, warmup=10):
        """Seconds of each of `calls` predictions of the first `batch` images, after `warmup` untimed ones."""
        images = self.images[: int(batch)]
        for _ in range(int(warmup)):
            self.predict(images)
        seconds = []
        for _ in range(int(calls)):
            start = time.perf_counter()
            self.predict(images)
            seconds.append(time.perf_counter() - start)
        return seconds


class _Requests:
    """What `Server`'s child answers."""

    def __init__(self, predictor):
        self.predictor = predictor

    def timings(self, batch, calls, warmup):
        return self.predictor.timings(batch, calls, warmup)

    def check(self, count):
        images = self.predictor.images[: int(count)]
        return {"probabilities": self.predictor.predict(images).tolist(), "logits": self.predictor.logits(images).tolist()}


class Server(torch_reference.Child):
    """A `Predictor` in its own process; `unavailable` as for `torch_reference.Worker`."""

    def __init__(self, name, state_dict, images, mean, std, mode, batch_sizes, model_options=None, threads=None):
        super().__init__(__file__, dict(
            name=name, state_dict=str(state_dict), images=str(images), mean=list(mean), std=list(std), mode=mode,
            batch_sizes=list(batch_sizes), model_options=model_options or {}, threads=threads,
        ))
        self.version, self.num_threads, self.unavailable = (
            self.hello["version"], self.hello["threads"], self.hello["unavailable"]
        )

    def timings(self, batch, calls, warmup=10):
        return self.request("timings", batch, calls, warmup)

    def check(self, count):
        """{"probabilities", "logits"} of the first `count` images, as lists."""
        return self.request("check", count)


def serve(options):
    batch_sizes = options.pop("batch_sizes")
    predictor = Predictor(**options)
    hello = {"version": torch.__version__, "threads": torch.get_num_threads(), "unavailable": predictor.warm_up(batch_sizes)}
    torch_reference.answer_requests(_Requests(predictor), hello)


if __name__ == "__main__":
    import json
    import sys

    if sys.argv[1:2] != ["--child"]:
        sys.exit("torch_serving.py is run by serving_latency.py (--child OPTIONS_JSON)")
    serve(json.loads(sys.argv[2]))
