"""Accuracy of an export or a run on a data set's test split."""

from kerascnn.data.pipeline import read_guard
from kerascnn.data.choose_source import open_source
from kerascnn.errors import DataError
from kerascnn.serving.predictor import load_predictor
from kerascnn.serving.scoring import ProbabilityScores


def evaluate(path, dataset=None, data_dir=None, batch_size=256, limit=None):
    """Top-1/top-5 accuracy and cross-entropy on the test split.

    The data defaults to what the model was trained on. Images go through
    the predictor as raw uint8, as in serving.

    Returns a dict with `images`, `accuracy`, `top5_accuracy`,
    `cross_entropy` (mean of -log p(true class)) and `data`.
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
    test = source.test_examples()
    if limit:
        test = test.take(limit)

    def run():
        scores = ProbabilityScores()
        for images, labels in test.batch(batch_size).as_numpy_iterator():
            scores.add(predictor.probabilities(images), labels)
        return scores

    scores = read_guard(source, run)
    if scores.count == 0:
        raise DataError(f"the test split of {source.info.name} is empty")
    return {**scores.result(), "data": source.info.name, "model": str(path)}
