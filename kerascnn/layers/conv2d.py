"""2-D convolution whose weight gradient on small feature maps is a sum of matrix products."""

import keras

# Feature maps of at most this many pixels (H * W) take the matrix-product weight
# gradient. Measured on a 2-core AVX512-BF16 CPU in bfloat16, batch 128, 3x3
# kernels (benchmarks/NOTES.md 34): the kernel gradient alone 2.8x faster at
# 2x2, 1.8x at 4x4 and 1.2x at 8x8 (512 and 256 channels), TensorFlow's kernel
# faster at 16x16 and 32x32; whole training steps were fastest with 16 (vgg16_bn
# 1.15x, resnet18 1.06x) rather than 64 (1.12x, 1.03x).
SMALL_MAP_PIXELS = 16
# The compute dtypes that take it. In float32 TensorFlow's kernel is as fast or
# faster at 4x4 and 8x8 (0.78-0.96x) and only 2x2 gains (1.16x), so float32
# stays on it; on GPUs nothing was measured, so they stay on it too.
SMALL_MAP_DTYPES = ("bfloat16",)


def weight_gradient(inputs, output_gradient, kernel_shape):
    """dL/dW of a stride-1 "same" convolution with an odd square kernel, as k*k matrix products.

    For y[n, h, w, o] = sum_{i, j, c} x_pad[n, h + i, w + j, c] * W[i, j, c, o]
    (x_pad: x zero-padded by k // 2 on each side, which is what "same" means
    for an odd k at stride 1), the chain rule gives

        dL/dW[i, j, c, o] = sum_{n, h, w} x_pad[n, h + i, w + j, c] * dy[n, h, w, o],

    so each kernel position (i, j) is one product X_ij^T dY, with X_ij the
    shifted input window reshaped to [N*H*W, C] and dY the output gradient
    reshaped to [N*H*W, O]: a [C, O] block of the kernel's gradient.
    """
    import tensorflow as tf

    size, _, channels, filters = kernel_shape
    height, width = inputs.shape[1], inputs.shape[2]
    pad = size // 2
    padded = tf.pad(inputs, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    dy = tf.reshape(output_gradient, [-1, filters])
    blocks = [
        tf.matmul(tf.reshape(padded[:, i : i + height, j : j + width, :], [-1, channels]), dy, transpose_a=True)
        for i in range(size)
        for j in range(size)
    ]
    return tf.reshape(tf.stack(blocks), [size, size, channels, filters])


def _gpus_visible():
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def _small_map_convolution(inputs, kernel):
    """tf.nn.conv2d at stride 1, "same", with `weight_gradient` as the kernel's gradient."""
    import tensorflow as tf

    @tf.custom_gradient
    def convolution(x, w):
        def gradient(dy):
            # The input's gradient is TensorFlow's own (the transposed convolution).
            dx = tf.nn.conv2d_transpose(dy, w, tf.shape(x), strides=1, padding="SAME")
            return dx, weight_gradient(x, dy, w.shape)

        return tf.nn.conv2d(x, w, strides=1, padding="SAME"), gradient

    return convolution(inputs, kernel)


@keras.saving.register_keras_serializable(package="kerascnn")
class Conv2D(keras.layers.Conv2D):
    """Keras' `Conv2D`, with a faster weight gradient on small maps in TensorFlow.

    TensorFlow's `Conv2DBackpropFilter` (its bundled oneDNN) computes the
    kernel gradient of deep layers on small maps (512 channels at 4x4 and
    2x2, VGG's last stages on CIFAR-10) 1.6-2.3x slower than PyTorch's
    (benchmarks/NOTES.md 29a), and that was the whole of vgg16_bn's bfloat16
    training gap. Here, on the TensorFlow backend on a CPU in bfloat16
    (`SMALL_MAP_DTYPES`), a convolution with stride 1, "same" padding, no
    dilation, one group, an odd square kernel and maps of at most
    `SMALL_MAP_PIXELS` pixels computes that gradient as k*k matrix products
    (`weight_gradient`); its forward pass and input gradient are TensorFlow's.
    Every other convolution is Keras' own. The function computed is the same;
    gradients differ only by float rounding. Measured (NOTES.md 34): vgg16_bn's
    mixed_bfloat16 training step 1.13x faster, resnet18's 1.05x.

    The class is called `Conv2D`, like Keras', for the reason given in
    `kerascnn.layers.BatchNormalization`: weight files key layers by the
    snake-case class name, so they load across the two. `.keras` files record
    it as `kerascnn>Conv2D`; loading them needs `kerascnn.layers` imported.
    """

    def uses_small_map_gradient(self, input_shape):
        """Whether a call on `input_shape` (N, H, W, C) takes the matrix-product weight gradient."""
        size = self.kernel_size[0]
        height, width = input_shape[1], input_shape[2]
        return (
            keras.backend.backend() == "tensorflow"
            and self.compute_dtype in SMALL_MAP_DTYPES
            and not _gpus_visible()
            and self.data_format == "channels_last"
            and tuple(self.strides) == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and self.groups == 1
            and self.padding == "same"
            and self.kernel_size == (size, size)
            and size % 2 == 1
            and height is not None
            and width is not None
            and height * width <= SMALL_MAP_PIXELS
        )

    def convolution_op(self, inputs, kernel):
        if not self.uses_small_map_gradient(inputs.shape):
            return super().convolution_op(inputs, kernel)
        import tensorflow as tf

        # The variable read under mixed precision is already the compute dtype;
        # the cast (a no-op then) makes sure the two operands agree.
        return _small_map_convolution(inputs, tf.cast(tf.convert_to_tensor(kernel), inputs.dtype))
