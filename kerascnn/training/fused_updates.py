"""Adam's update of each variable as one TensorFlow kernel, not a chain of element-wise ops.

Keras 3 writes Adam's update of each variable as ten element-wise passes
over the weight, its two moments and the gradient (subtract, multiply and
assign-add for each moment, a square, a square root, an add, a multiply, a
divide and an assign-subtract). On a CPU every pass streams the whole tensor
through memory, and alexnet_cifar has 35 M weights (140 MB in float32).
TensorFlow has the same update as one kernel that reads and writes each
tensor once, multi-threaded: `ResourceApplyAdam`
(tensorflow/core/kernels/training_ops.cc). alexnet_cifar's training step
(batch norm, batch 32 / 128, float32, AVX2 CPU) measured 1.24x / 1.19x
faster with it (benchmarks/NOTES.md, 23). SGD with momentum, eight passes in
Keras, measured no faster with `ResourceApplyKerasMomentum` (0.98x / 1.06x)
and keeps Keras' update.

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
sparse (IndexedSlices) gradients, and variables mirrored across replicas
(MirroredStrategy), whose slot variables are distributed values.
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


def fuse_updates(optimizer):
    """`optimizer` (a Keras Adam or AdamW) updating each variable with one TensorFlow kernel.

    The fused step replaces this instance's `update_step` only: the class,
    its configuration and its variables stay Keras', so a saved optimizer
    loads anywhere. Other optimizers are returned unchanged.
    """
    if keras.backend.backend() != "tensorflow":
        return optimizer
    if isinstance(optimizer, keras.optimizers.Adam):  # AdamW is an Adam
        optimizer.update_step = _adam_step(optimizer, optimizer.update_step)
    return optimizer


def is_fused(optimizer):
    """Whether `fuse_updates` gave this optimizer its one-kernel step."""
    step = optimizer.__dict__.get("update_step")
    return isinstance(step, types.FunctionType) and step.__name__ == "update_step"
