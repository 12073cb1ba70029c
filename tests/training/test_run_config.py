"""A run's configuration: validated, round-tripped, hashed; trials share the budget."""

from __future__ import annotations

import pytest

from training.run_config import RunConfig, RunConfigError, SearchSpec


def test_round_trip_and_digest():
    config = RunConfig.from_dict(
        {"task": "detector", "minutes": 20, "search": {"trials": 8}, "augment": ["rotate", "blur"]}
    )
    assert config.search == SearchSpec(trials=8, rounds=2, seed=0)
    assert config.augment == ("rotate", "blur")
    again = RunConfig.from_dict(config.to_dict())
    assert again.digest() == config.digest()
    assert RunConfig(minutes=21).digest() != RunConfig(minutes=20).digest()
    assert config.trial_minutes() == pytest.approx(2.5)  # 8 trials share 20 minutes
    assert config.objective == ("map50", "max") and RunConfig(task="verifier").objective == (
        "eer",
        "min",
    )


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"task": "segmenter"}, "task"),
        ({"batch_size": 24}, "power of two"),
        ({"img_size": 300}, "multiple of 32"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"optimizer": "lion"}, "optimizer"),
        ({"search": {"trials": 0}}, "search.trials"),
        ({"search": {"trials": 4, "grid": True}}, "unknown"),
        ({"satisficing": {"latency_ms": -1}}, "satisficing"),
        ({"colour": "red"}, "Unknown field"),
        ({"augment": ["sparkle"]}, "augment"),
        # Accepted before, and failed only once the run had started training:
        ({"patience": 1.5}, "patience must be a whole number"),
        ({"img_size": 96.0}, "img_size must be a whole number"),
        ({"freeze_blocks": True}, "freeze_blocks must be a whole number"),
        ({"seed": "abc"}, "seed: 0 to"),
        ({"seed": 2**40}, "seed: 0 to"),
        ({"start_from": 0}, "start_from"),
        ({"search": {"trials": 1.5}}, "search.trials must be a whole number"),
        ({"search": {"seed": -1}}, "search.seed"),
    ],
)
def test_bad_configs_name_what_is_wrong(data, why):
    with pytest.raises(RunConfigError, match=why):
        RunConfig.from_dict(data)


def test_a_trial_overrides_but_never_changes_the_task_or_search():
    config = RunConfig(search=SearchSpec(trials=4), learning_rate=1e-3)
    trial = config.with_overrides({"learning_rate": 3e-4, "task": "verifier", "search": None})
    assert trial.learning_rate == 3e-4 and trial.task == "detector" and trial.search is not None
