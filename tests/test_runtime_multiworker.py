"""Two worker processes on localhost train one model under MultiWorkerMirroredStrategy."""

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from kerascnn.runtime.quiet import import_tensorflow_quietly
    import_tensorflow_quietly()
    import numpy as np
    from kerascnn.config import RunConfig
    from kerascnn.training.fit import fit

    index, workers, run_dir, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    config = RunConfig.from_flags(
        "vgg8", dataset="synthetic", limit_train=256, batch_size=16, epochs=1, schedule="constant",
        workers=workers, worker_index=index, run_dir=run_dir, seed=1,
        model_options={{"width_multiplier": 0.125, "dropout": 0.0}},
    )
    result = fit(config, verbose=0)
    np.savez(out, *result.model.get_weights())
    print("run directory", result.run_dir)
    """
)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_share_one_run_and_end_with_identical_weights(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=ROOT))
    workers = ",".join(f"localhost:{p}" for p in _free_ports(2))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(scratch)}
    env.pop("TF_CONFIG", None)
    run_dir = tmp_path / "run"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(i), workers, str(run_dir), str(tmp_path / f"w{i}.npz")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]

    # Worker 0 (the chief) wrote the run; worker 1 wrote to a temporary folder it removed.
    assert f"run directory {run_dir}" in outputs[0][0]
    assert "kerascnn-worker-" in outputs[1][0]
    assert not any(scratch.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["run", "tmp"]
    assert (run_dir / "metrics.json").exists() and (run_dir / "best.keras").exists()
    config = (run_dir / "config.json").read_text()
    assert "MultiWorkerMirroredStrategy (2 replicas)" in config

    # Gradients were all-reduced every step: both workers hold the same model.
    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert len(w0.files) == len(w1.files) > 0
    for name in w0.files:
        np.testing.assert_array_equal(w0[name], w1[name])
