"""The diagnosis reads the notes' own example tables as the notes do."""

from __future__ import annotations

import pytest

from training.diagnosis import diagnose


@pytest.mark.parametrize(
    ("errors", "verdict"),
    [
        # "Bias and Variance": Bayes error 0% (human unknown), train / validation.
        ({"train": 0.01, "val": 0.11}, "variance"),
        ({"train": 0.15, "val": 0.16}, "bias"),
        # "Comparing to human-level performance": human / train / validation.
        ({"human": 0.01, "train": 0.08, "val": 0.10}, "bias"),
        ({"human": 0.075, "train": 0.08, "val": 0.10}, "variance"),
        # "Bias variance with mismatching data distributions": train / train-val / val.
        ({"train": 0.01, "train_val": 0.09, "val": 0.10}, "variance"),
        ({"train": 0.01, "train_val": 0.015, "val": 0.10}, "data mismatch"),
        ({"train": 0.10, "train_val": 0.11, "val": 0.12}, "bias"),
        # The notes: validation and test far apart = overfitting to validation.
        ({"human": 0.0, "train": 0.01, "train_val": 0.015, "val": 0.02, "test": 0.09},
         "overfitting to validation"),
        ({"human": 0.01, "train": 0.015, "train_val": 0.02, "val": 0.025, "test": 0.03},
         "no clear problem"),
    ],
)  # fmt: skip
def test_the_notes_tables(errors, verdict):
    values = {"human": None, "train": None, "train_val": None, "val": None, "test": None}
    result = diagnose(**{**values, **errors})
    assert result.verdict == verdict


def test_the_gaps_and_the_keys_the_api_shows():
    result = diagnose(human=0.01, train=0.02, train_val=0.05, val=0.12, test=0.13).to_dict()
    assert result["avoidable_bias"] == pytest.approx(0.01)
    assert result["variance"] == pytest.approx(0.03)
    assert result["data_mismatch"] == pytest.approx(0.07)
    assert result["val_overfitting"] == pytest.approx(0.01)
    assert result["verdict"] == "data mismatch" and "synthesise" in result["advice"]
    assert set(result) == {
        "human_error", "train_error", "train_val_error", "val_error", "test_error",
        "avoidable_bias", "variance", "data_mismatch", "val_overfitting", "verdict", "advice",
    }  # fmt: skip


def test_unknown_human_error_is_said_and_measured_against_zero():
    result = diagnose(human=None, train=0.2, train_val=0.21, val=0.22, test=None)
    assert result.avoidable_bias == pytest.approx(0.2) and result.val_overfitting is None
    assert "Human-level error is unknown" in result.advice
