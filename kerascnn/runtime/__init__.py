"""The machine a run uses: strategies, hardware, model parallelism, batch-size search.

    strategies      tf.distribute strategy from --devices / --cpu-replicas / multi-worker; sync BN; lr scaling
    hardware        what this machine has, and what --precision / --jit auto choose on it
    model_parallel  AlexNet's two towers on two devices (--model-parallel)
    batch_size      --batch-size auto: the largest power of two that trains
    quiet           importing TensorFlow without its start-up noise
    onednn          TensorFlow's oneDNN CPU kernels on every x86-64 CPU (TF_ENABLE_ONEDNN_OPTS=1 unless set)
"""
