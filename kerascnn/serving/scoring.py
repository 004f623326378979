"""Accuracy, top-5 accuracy and cross-entropy from predicted probabilities, batch by batch."""

import numpy as np


class ProbabilityScores:
    """Running totals over batches of (probabilities [N, C], integer labels [N]).

    cross-entropy = mean of -log p(true class), with p clipped at 1e-12.
    With `num_classes`, also the confusion counts C[true, predicted].
    """

    def __init__(self, num_classes=None):
        self.count = self.correct = self.correct5 = 0
        self.nll = 0.0
        self.confusion = None if num_classes is None else np.zeros((num_classes, num_classes), np.int64)

    def add(self, probs, labels):
        probs = np.asarray(probs)
        labels = np.asarray(labels)
        predicted = np.argmax(probs, axis=1)
        if self.confusion is not None:
            np.add.at(self.confusion, (labels, predicted), 1)
        self.count += len(labels)
        self.correct += int(np.sum(predicted == labels))
        top5 = np.argsort(-probs, axis=1)[:, :5]
        self.correct5 += int(np.sum(np.any(top5 == labels[:, None], axis=1)))
        self.nll += float(-np.sum(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0))))

    def result(self):
        """{"images", "accuracy", "top5_accuracy", "cross_entropy"}."""
        return {
            "images": self.count,
            "accuracy": self.correct / self.count,
            "top5_accuracy": self.correct5 / self.count,
            "cross_entropy": self.nll / self.count,
        }
