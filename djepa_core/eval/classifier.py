"""The evaluation classifier: scikit-learn MLP on the real training split's pixels, seeded.

Input: images [N, 1, S, S] in [-1, 1] flattened (S = 16 for the digits model). One hidden layer
of 128 ReLU units; its activations are the features of the Fréchet distance (the "penultimate
layer" of a one-hidden-layer network). Deterministic for a given `seed` (default 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

HIDDEN = 128


class DigitClassifier:
    def __init__(self, seed: int = 0, hidden: int = HIDDEN) -> None:
        from sklearn.neural_network import MLPClassifier

        self.mlp: Any = MLPClassifier(hidden_layer_sizes=(hidden,), activation="relu", alpha=1e-3,
                                      max_iter=400, random_state=seed, early_stopping=False)

    @staticmethod
    def _flat(images: torch.Tensor | np.ndarray) -> np.ndarray:
        x = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        return np.clip(x.reshape(len(x), -1), -1.0, 1.0).astype(np.float64)

    def fit(self, images: torch.Tensor, labels: torch.Tensor) -> DigitClassifier:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.mlp.fit(self._flat(images), np.asarray(labels))
        return self

    def predict(self, images: torch.Tensor) -> np.ndarray:
        return np.asarray(self.mlp.predict(self._flat(images)))

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor | np.ndarray) -> float:
        return float((self.predict(images) == np.asarray(labels)).mean())

    def features(self, images: torch.Tensor) -> np.ndarray:
        """Hidden-layer activations relu(x W1 + b1) [N, hidden]."""
        x = self._flat(images)
        h = x @ self.mlp.coefs_[0] + self.mlp.intercepts_[0]
        return np.maximum(h, 0.0)
