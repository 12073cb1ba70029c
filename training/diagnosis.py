"""Bias, variance and data mismatch from a model's errors on each split, as the notes read
them, with the notes' advice for the largest gap.

Errors are fractions (0.08 = 8%). Human-level error stands in for the Bayes error: with it,
the gap to training error is the *avoidable* bias; without it (unknown), the training error
itself is reported as the bias, as the notes do when they presume a Bayes error of 0%.

The gaps, each the next split's error minus the previous one's:

- avoidable bias = train − human
- variance = train-val − train (train-val: the training distribution, never trained on)
- data mismatch = validation − train-val (validation: the target distribution)
- overfitting to validation = test − validation
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A gap of at most this is not a problem to act on: in the notes' examples the gaps they
# call low are 0.5 to 1 point, the problems they name 2 points and more.
NEGLIGIBLE_GAP = 0.01

ADVICE = {
    "avoidable_bias": (
        "High avoidable bias: train a bigger model, train longer or with a better optimiser "
        "(Adam, RMSprop), or search other architectures and hyper-parameters."
    ),
    "variance": (
        "High variance: get more training data, add regularisation (L2, dropout, data "
        "augmentation), or search other architectures and hyper-parameters."
    ),
    "data_mismatch": (
        "Data mismatch: the training data differs from the target. Look at the validation "
        "errors to see how (error analysis), make the training data more like the target, "
        "collect more data like it, or synthesise it."
    ),
    "val_overfitting": (
        "Overfitting to validation: the choices tuned on validation do not carry to test; "
        "get a bigger validation set."
    ),
    "none": (
        "No gap stands out: check that the model does well in practice; if it does not, "
        "change the metric or the validation and test sets."
    ),
}
VERDICTS = {
    "avoidable_bias": "bias",
    "variance": "variance",
    "data_mismatch": "data mismatch",
    "val_overfitting": "overfitting to validation",
    "none": "no clear problem",
}


@dataclass(frozen=True)
class Diagnosis:
    """The notes' table, computed; ``None`` where a split's error is unknown."""

    human_error: float | None
    train_error: float | None
    train_val_error: float | None
    val_error: float | None
    test_error: float | None
    avoidable_bias: float | None
    variance: float | None
    data_mismatch: float | None
    val_overfitting: float | None
    largest: str  # the gap acted on: a key of ADVICE
    human_known: bool

    @property
    def verdict(self) -> str:
        return VERDICTS[self.largest]

    @property
    def advice(self) -> str:
        text = ADVICE[self.largest]
        if self.largest == "avoidable_bias" and not self.human_known:
            text += (
                " (Human-level error is unknown, so the bias is measured against 0%: enter it "
                "for the dataset to see how much of it is avoidable.)"
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "human_error": self.human_error,
            "train_error": self.train_error,
            "train_val_error": self.train_val_error,
            "val_error": self.val_error,
            "test_error": self.test_error,
            "avoidable_bias": self.avoidable_bias,
            "variance": self.variance,
            "data_mismatch": self.data_mismatch,
            "val_overfitting": self.val_overfitting,
            "verdict": self.verdict,
            "advice": self.advice,
        }


def _gap(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else round(later - earlier, 6)


def diagnose(
    *,
    human: float | None,
    train: float | None,
    train_val: float | None,
    val: float | None,
    test: float | None,
    negligible: float = NEGLIGIBLE_GAP,
) -> Diagnosis:
    """The gaps between the splits' errors, and which to act on first.

    The largest gap above ``negligible`` names the problem; ties go in the notes' order
    (bias, then variance, then mismatch, then validation), the order the basic recipe
    fixes them in. With no train-val error, validation − train counts as variance (the
    notes' first table, where train and validation share a distribution).
    """
    known_human = human is not None
    bias = _gap(train, human if known_human else 0.0)
    if train_val is not None:
        variance, mismatch = _gap(train_val, train), _gap(val, train_val)
    else:
        variance, mismatch = _gap(val, train), None
    overfit = _gap(test, val)
    gaps = {
        "avoidable_bias": bias,
        "variance": variance,
        "data_mismatch": mismatch,
        "val_overfitting": overfit,
    }
    ranked = [(value, name) for name, value in gaps.items() if value is not None]
    largest = "none"
    best = negligible
    for value, name in ranked:  # in the notes' order: a later gap must be strictly larger
        if value > best:
            largest, best = name, value
    return Diagnosis(
        human_error=human,
        train_error=train,
        train_val_error=train_val,
        val_error=val,
        test_error=test,
        avoidable_bias=bias,
        variance=variance,
        data_mismatch=mismatch,
        val_overfitting=overfit,
        largest=largest,
        human_known=known_human,
    )
