"""Which views airbench's flip-and-shift test-time augmentation takes, and how it weighs them.

Pure array code with no TensorFlow, so that a script on another Keras
backend (benchmarks/gpu_recipes.py on JAX) combines its views with the same
definition as `kerascnn.serving.tta`, which makes the views with TensorFlow.

Jordan (2024), "94% on CIFAR-10 in 3.29 seconds on a single GPU", test-time
augmentation level 2: the flip average of the image weighs one half, the flip
averages of the image moved one pixel up-left and one pixel down-right one
quarter each,

    p = 1/2 flip_avg(x) + 1/4 flip_avg(shift(x, -1, -1)) + 1/4 flip_avg(shift(x, +1, +1))
"""

# (dy, dx) of the three shifted views: the image, one pixel up-left, one pixel down-right.
VIEW_SHIFTS = ((0, 0), (-1, -1), (1, 1))


def combine_views(probs):
    """(plain, flip, flip and shift) probabilities from six views' probabilities.

    `probs` holds the views in the order of `kerascnn.serving.tta.flip_shift_views`:
    the three `VIEW_SHIFTS`, then the mirror of each. Works on tensors and
    NumPy arrays alike.
    """
    pairs = [(probs[i] + probs[i + 3]) / 2.0 for i in range(3)]
    return probs[0], pairs[0], 0.5 * pairs[0] + 0.25 * (pairs[1] + pairs[2])
