"""The report's "GPU memory limits" section (study figure `memory`): an ESTIMATE per arm, not a measurement.

For each arm, its first finished run's model is rebuilt from config.json
(the training graph, at the run's input size and classes) and put through
`kerascnn.analysis.memory` with the run's optimizer (its slots) and the
compute dtype of its precision:

    M(b) = 4 B x (P + T x (1 + s)) + 1 GiB + b x 2 x A

The table gives, per arm, the parameters, the optimizer and its slots s, the
activation dtype, 2 x A in MiB per image, the fixed part (the first two
terms) in MiB, and for each card of `GPU_GIB` gigabytes (taken as GiB) the
largest batch that fits, floor((G - fixed) / per image), with the largest
power of two below it in brackets. The figure (`figures.memory`) draws M(b).
"""

import keras

from kerascnn.analysis.compare import rebuild_model
from kerascnn.analysis.memory import GIB, GPU_GIB, MIB, compute_dtype, estimate_training_memory, power_of_two_at_most

OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}

COLUMNS = (
    ("arm", "arm"), ("params", "parameters"), ("optimizer", "optimizer (slots s)"), ("dtype", "activations"),
    ("per_image", "MiB per image (2A)"), ("fixed", "fixed MiB"),
) + tuple((f"gpu{g}", f"{g} GB") for g in GPU_GIB)

EXPLANATION = (
    "Estimated from the networks' sizes, not measured: no GPU trained these runs. Training memory at batch b is "
    "M(b) = 4 B x (P + T x (1 + s)) + 1 GiB + b x 2 x A: float32 weights (P parameters) and, for each of the T "
    "trainable ones, a float32 gradient and s optimizer slots (SGD with momentum 1, Adam and AdamW 2, "
    "RMSprop 2 with its fused step tensor, +1 with --ema or --lookahead); a fixed 1 GiB for the CUDA context and the cuBLAS/cuDNN workspaces; and per image twice the "
    "forward activations A (the activation total of the summary command at the run's input size and compute dtype), because "
    "backpropagation keeps them and holds gradients of about their size. Fixed MiB is the part without b. Each GB "
    "column is the largest batch with M(b) within that many GiB, floor((G - fixed) / per image), and in brackets "
    "the largest power of two below it."
)
LEFT_OUT = (
    "Left out, so expect the real limits to be lower by a margin only a GPU measures: cuDNN's choice of "
    "convolution algorithm (some need workspaces far above the reserve), the allocator's rounding and "
    "fragmentation, XLA (its fusion saves memory, its buffers cost some), the half-precision copies of the weights "
    "mixed precision makes each step, dropout masks, ops' scratch buffers and prefetched input batches. "
    "fit --batch-size auto measures the largest power-of-two batch (up to 1024) on the machine itself."
)


def arm_estimates(summaries):
    """[(ArmSummary, MemoryEstimate)] of the finished arms whose model can be rebuilt from config.json."""
    estimates = []
    for s in summaries:
        config = s.runs[0].config
        model = rebuild_model(config)
        if model is None:
            continue
        optim = config.get("optim") or {}
        try:
            estimates.append((s, estimate_training_memory(
                model, optim.get("optimizer", "sgd"), optim.get("momentum", 0.0), optim.get("ema"),
                dtype=compute_dtype(config.get("precision", "float32")), lookahead=optim.get("lookahead"),
            )))
        except ValueError:
            pass  # an optimizer or precision the formula does not know: the section names the arm
        keras.backend.clear_session()
    return estimates


def _optimizer(summary, estimate):
    optim = summary.runs[0].config.get("optim") or {}
    name = optim.get("optimizer", "sgd")
    text = OPTIMIZER_NAMES.get(name, name)
    if name == "sgd" and optim.get("momentum"):
        text += " + momentum"
    if optim.get("ema") is not None:
        text += " + EMA"
    if optim.get("lookahead") is not None:
        text += " + lookahead"
    return f"{text} ({estimate.slots})"


def table_rows(estimates):
    """The rows of the report's memory table (columns `COLUMNS`)."""
    rows = []
    for s, e in estimates:
        row = {
            "arm": s.label, "params": f"{e.params:,}", "optimizer": _optimizer(s, e), "dtype": e.dtype,
            "per_image": f"{e.per_image_bytes / MIB:,.3f}", "fixed": f"{e.fixed_bytes / MIB:,.0f}",
        }
        for g in GPU_GIB:
            batch = e.max_batch(g * GIB)
            row[f"gpu{g}"] = f"{batch:,} ({power_of_two_at_most(batch):,})" if batch else "does not fit"
        rows.append(row)
    return rows


def section(doc, summaries, estimates):
    """Add the heading, the explanation, the table (id `memory`) and what it leaves out to `doc`."""
    doc.heading("GPU memory limits (estimate)", id="memory-heading")
    doc.paragraph(EXPLANATION)
    doc.table(COLUMNS, table_rows(estimates), "memory")
    estimated = {s.name for s, _ in estimates}
    missing = [s.label for s in summaries if s.name not in estimated]
    if missing:
        doc.paragraph(f"No estimate for {', '.join(missing)}: the model, its optimizer or its precision could not "
                      "be rebuilt from the run's config.json.")
    doc.paragraph(LEFT_OUT)
