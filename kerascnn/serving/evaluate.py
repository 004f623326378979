"""Accuracy of an export or a run on a data set's test split."""

from kerascnn.data.pipeline import read_guard
from kerascnn.data.choose_source import open_source
from kerascnn.errors import DataError
from kerascnn.serving.predictor import load_predictor
from kerascnn.serving.scoring import ProbabilityScores
from kerascnn.serving.tta import combine_views, flip_shift_views


def evaluate(path, dataset=None, data_dir=None, batch_size=256, limit=None, flip_shift=False):
    """Top-1/top-5 accuracy and cross-entropy on the test split.

    The data defaults to what the model was trained on. Images go through
    the predictor as raw uint8, as in serving.

    Returns a dict with `images`, `accuracy`, `top5_accuracy`,
    `cross_entropy` (mean of -log p(true class)) and `data`. With
    `flip_shift`, also `with_flips` and `with_flips_and_shifts`, the same
    metrics of the test-time augmentations of `kerascnn.serving.tta` (six
    forward passes per image: the raw image, one pixel up-left, one pixel
    down-right, and their mirrors).
    """
    predictor = load_predictor(path)
    if dataset is None and data_dir is None and predictor.data:
        dataset, data_dir = predictor.data.get("dataset"), predictor.data.get("data_dir")
    source = open_source(dataset, data_dir, predictor.image_size)
    if source.info.num_classes != len(predictor.class_names):
        raise DataError(
            f"{source.info.name} has {source.info.num_classes} classes but the model predicts "
            f"{len(predictor.class_names)}; evaluate on the data set it was trained for"
        )
    if tuple(source.info.class_names) != tuple(predictor.class_names):
        # The same count with other names, or the same names in another order: label i of the data
        # would be scored against the model's class i, a wrong figure with no error.
        differ = next(i for i, (a, b) in enumerate(zip(source.info.class_names, predictor.class_names)) if a != b)
        raise DataError(
            f"{source.info.name}'s class {differ} is {source.info.class_names[differ]!r} but the model's is "
            f"{predictor.class_names[differ]!r}; evaluate on the data set it was trained for, "
            "its classes in the same order"
        )
    test = source.test_examples()
    if limit:
        test = test.take(limit)

    def run():
        scores = [ProbabilityScores() for _ in range(3 if flip_shift else 1)]
        for images, labels in test.batch(batch_size).as_numpy_iterator():
            if flip_shift:
                views = [predictor.probabilities(v) for v in flip_shift_views(images)]
                for score, probs in zip(scores, combine_views(views)):
                    score.add(probs, labels)
            else:
                scores[0].add(predictor.probabilities(images), labels)
        return scores

    scores = read_guard(source, run)
    if scores[0].count == 0:
        raise DataError(f"the test split of {source.info.name} is empty")
    result = {**scores[0].result(), "data": source.info.name, "model": str(path)}
    if flip_shift:
        result["with_flips"], result["with_flips_and_shifts"] = scores[1].result(), scores[2].result()
    return result
