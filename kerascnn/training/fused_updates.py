"""Each variable's optimizer update as one TensorFlow kernel, not a chain of element-wise ops.

Keras 3 writes Adam's update of each variable as ten element-wise passes
over the weight, its two moments and the gradient (subtract, multiply and
assign-add for each moment, a square, a square root, an add, a multiply, a
divide and an assign-subtract). On a CPU every pass streams the whole tensor
through memory, and alexnet_cifar has 35 M weights (140 MB in float32).
TensorFlow has the same update as one kernel that reads and writes each
tensor once, multi-threaded: `ResourceApplyAdam`
(tensorflow/core/kernels/training_ops.cc). alexnet_cifar's training step
(batch norm, batch 32 / 128, float32, AVX2 CPU) measured 1.24x / 1.19x
faster with it (benchmarks/NOTES.md, 23). SGD with momentum
(`ResourceApplyKerasMomentum`) and RMSprop (`ResourceApplyRMSProp`), about
11 and 20 passes in Keras: 1.00-1.10x on that AVX2 host (SGD, NOTES.md 41),
1.11-1.17x (SGD) and 1.24-1.34x (RMSprop) on an Intel Xeon with AMX, whose
faster convolutions leave the update a larger share of the step, faster in
9 of 9 rounds at batch 32, 64 and 128 (NOTES.md 47): all three are fused.

The arithmetic is Keras', term for term (Kingma & Ba 2015, Algorithm 1 with
the epsilon-hat form of section 2):

    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m <- m + (g - m) * (1 - beta_1);   v <- v + (g^2 - v) * (1 - beta_2)
    w <- w - alpha * m / (sqrt(v) + epsilon)

One difference in the last bits: TensorFlow's Adam kernel computes 1 - beta_2
in float32 (1 - 0.999f = 0.00100005), Keras in double (0.001), so the second
moment moves 5e-5 relatively more per step; the weights agree to 2e-6 over
the steps the tests take.

AdamW is Adam after its decoupled decay, which Keras applies before the
update, as it applies gradient clipping before and the weight average (EMA)
after; so they are unchanged. The optimizer keeps its Keras class and slot
variables, so saved files and checkpoints are plain Keras and resume either
way. Keras' own update is used where the fused kernel does not apply: AMSGrad,
SGD without momentum, centred RMSprop, sparse (IndexedSlices) gradients, and
variables mirrored across replicas (MirroredStrategy), whose slot variables
are distributed values.
"""

import types

import keras


def _tf_variable(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


def _fusable(gradient, *variables):
    """Dense gradient, and every variable a plain (not replica-mirrored) TensorFlow variable."""
    import tensorflow as tf

    if isinstance(gradient, tf.IndexedSlices):
        return False
    return not any(isinstance(_tf_variable(v), tf.distribute.DistributedValues) for v in variables)


def _adam_step(optimizer, keras_step):
    # Imported here, not at the top: on Keras' other backends (JAX on a machine
    # without TensorFlow) `fuse_updates` returns the optimizer untouched.
    import tensorflow as tf

    def update_step(gradient, variable, learning_rate):
        index = optimizer._get_variable_index(variable)
        m, v = optimizer._momentums[index], optimizer._velocities[index]
        if optimizer.amsgrad or not _fusable(gradient, variable, m, v):
            return keras_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(optimizer.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(optimizer.beta_1, dtype), tf.cast(optimizer.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_tf_variable(variable).handle, m=_tf_variable(m).handle, v=_tf_variable(v).handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(optimizer.epsilon, dtype), grad=tf.cast(gradient, dtype),
        )

    return update_step


def _sgd_step(optimizer, keras_step):
    """SGD with (Nesterov) momentum as `ResourceApplyKerasMomentum`: Keras' arithmetic, op for op.

    Keras (keras/src/optimizers/sgd.py) and the kernel (training_ops.cc,
    ApplyKerasMomentum) both compute m <- m * mu - g * lr, then
    w <- w + m * mu - g * lr (Nesterov) or w <- w + m.
    """
    import tensorflow as tf

    def update_step(gradient, variable, learning_rate):
        if optimizer.momentum == 0:
            return keras_step(gradient, variable, learning_rate)
        m = optimizer.momentums[optimizer._get_variable_index(variable)]
        if not _fusable(gradient, variable, m):
            return keras_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=_tf_variable(variable).handle, accum=_tf_variable(m).handle, lr=tf.cast(learning_rate, dtype),
            grad=tf.cast(gradient, dtype), momentum=tf.cast(optimizer.momentum, dtype),
            use_nesterov=bool(optimizer.nesterov),
        )

    return update_step


def _rmsprop_step(optimizer, keras_step, keras_build):
    """RMSprop (not centred) as `ResourceApplyRMSProp`, Keras' arithmetic (Hinton's lecture 6e):

        v <- rho v + (1 - rho) g^2;   u <- mu u + lr g / sqrt(v + epsilon);   w <- w - u

    with u Keras' momentum slot when momentum > 0. Without momentum (Keras'
    default, kerascnn's) u is w's step itself, and the kernel still needs a
    tensor for it: a scratch variable per weight, created with the slots and
    kept out of the optimizer's variables (0 * u adds nothing, so it is never
    saved and a resumed run starts it at zero; only its memory is the cost).
    TensorFlow writes the first line v + (g^2 - v)(1 - rho), the same value
    up to rounding.
    """
    import tensorflow as tf

    scratch = {}
    # For the memory estimate's test (kerascnn.analysis.memory counts them as a slot). A function,
    # not the dict: Keras' attribute tracking would copy a dict, and track the variables put in it
    # as the optimizer's own (saved with it).
    optimizer.fused_step_tensors = lambda: list(scratch.values())

    def build(var_list):
        keras_build(var_list)
        if optimizer.momentum > 0 or optimizer.centered or scratch:
            return
        with tf.init_scope():
            for variable in var_list:
                if _fusable(None, variable):
                    scratch[optimizer._get_variable_index(variable)] = tf.Variable(
                        tf.zeros(variable.shape, variable.dtype), trainable=False, name="rmsprop_step")

    def update_step(gradient, variable, learning_rate):
        if optimizer.centered:
            return keras_step(gradient, variable, learning_rate)
        index = optimizer._get_variable_index(variable)
        velocity = optimizer._velocities[index]
        step = optimizer._momentums[index] if optimizer.momentum > 0 else scratch.get(index)
        if step is None or not _fusable(gradient, variable, velocity, step):
            return keras_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        tf.raw_ops.ResourceApplyRMSProp(
            var=_tf_variable(variable).handle, ms=_tf_variable(velocity).handle, mom=_tf_variable(step).handle,
            lr=tf.cast(learning_rate, dtype), rho=tf.cast(optimizer.rho, dtype),
            momentum=tf.cast(optimizer.momentum, dtype), epsilon=tf.cast(optimizer.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )

    return update_step, build


# Every kind `fuse_updates` can fuse, and those it fuses unless told (benchmarks/fused_updates.py
# measures each against Keras' update; benchmarks/NOTES.md 23, 41, 47).
KINDS = ("adam", "sgd", "rmsprop")
FUSED = KINDS


def fuse_updates(optimizer, fused=None):
    """`optimizer` updating each variable with one TensorFlow kernel, if its kind is in `fused` (default FUSED).

    Kinds: "adam" (Adam and AdamW), "sgd" (with momentum), "rmsprop" (not
    centred). The fused step replaces this instance's `update_step` (and
    RMSprop's `build`) only: the class, its configuration and its variables
    stay Keras', so a saved optimizer loads anywhere. Other optimizers are
    returned unchanged.
    """
    fused = FUSED if fused is None else fused
    if keras.backend.backend() != "tensorflow":
        return optimizer
    if isinstance(optimizer, keras.optimizers.Adam) and "adam" in fused:  # AdamW is an Adam
        optimizer.update_step = _adam_step(optimizer, optimizer.update_step)
    elif isinstance(optimizer, keras.optimizers.SGD) and "sgd" in fused:
        optimizer.update_step = _sgd_step(optimizer, optimizer.update_step)
    elif isinstance(optimizer, keras.optimizers.RMSprop) and "rmsprop" in fused:
        optimizer.update_step, optimizer.build = _rmsprop_step(optimizer, optimizer.update_step, optimizer.build)
    return optimizer


def is_fused(optimizer):
    """Whether `fuse_updates` gave this optimizer its one-kernel step."""
    step = optimizer.__dict__.get("update_step")
    return isinstance(step, types.FunctionType) and step.__name__ == "update_step"
