"""Command-line options shared by the manage.py commands, the experiments and the bench.

Pure code (no Django; Django's ``CommandParser`` is an ``argparse.ArgumentParser``). One
table, :data:`FIT_OPTIONS`, maps each option to the :class:`training.fit.FitConfig` field it
overrides; :func:`add_fit_arguments` declares the options and :func:`fit_config_from_args`
builds the config from what was parsed, so every tool spells and applies them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from training.fit import FitConfig

# option dest -> (FitConfig field, type, help). An option left out keeps the base's value.
FIT_OPTIONS: dict[str, tuple[str, type, str]] = {
    "epochs": ("max_epochs", int, "Maximum number of epochs."),
    "minutes": ("max_minutes", float, "Wall-clock budget in minutes."),
    "lr": ("learning_rate", float, "Initial learning rate."),
    "batch_size": ("batch_size", int, "Mini-batch size (a power of two)."),
    "schedule": ("lr_schedule", str, "Learning-rate decay: none, inverse_time, ... cosine."),
    "patience": ("patience", int, "Epochs without improvement before stopping early."),
    "weight_decay": ("weight_decay", float, "L2 penalty on the weights."),
}


def add_fit_arguments(
    parser: argparse.ArgumentParser,
    base: FitConfig,
    names: Iterable[str] = FIT_OPTIONS,
    *,
    exclusive_budget: bool = False,
) -> None:
    """Declare ``--epochs``, ``--minutes``, ``--lr``, ... (those in ``names``) on ``parser``.

    Every option defaults to ``None`` ("keep ``base``'s value", shown in its help), so
    :func:`fit_config_from_args` can tell what was asked for from what was not.

    Args:
        parser: an ``argparse`` parser (or a Django ``CommandParser``).
        base: the config whose values the help shows as defaults.
        names: keys of :data:`FIT_OPTIONS` to declare.
        exclusive_budget: ``--epochs`` and ``--minutes`` become alternatives.
    """
    group: Any = parser.add_mutually_exclusive_group() if exclusive_budget else parser
    for name in names:
        field, kind, text = FIT_OPTIONS[name]
        target = group if name in ("epochs", "minutes") else parser
        target.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=kind,
            default=None,
            help=f"{text} Default {getattr(base, field)}.",
        )


def fit_config_from_args(
    base: FitConfig,
    args: argparse.Namespace | Mapping[str, Any],
    *,
    epochs_drop_clock: bool = False,
) -> FitConfig:
    """``base`` with the fit options that were given (not ``None``) applied.

    Args:
        base: the tool's default config.
        args: parsed options (a ``Namespace``, or the ``options`` dict of a Django command);
            keys missing from it count as not given.
        epochs_drop_clock: ``--epochs`` given without ``--minutes`` trains exactly that many
            epochs, with no wall-clock budget (``train_detector``'s rule); by default the
            base's budget still applies.

    Returns:
        A new :class:`FitConfig` (its own checks run on the result).
    """
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    changes = {
        FIT_OPTIONS[name][0]: given[name] for name in FIT_OPTIONS if given.get(name) is not None
    }
    if epochs_drop_clock and "max_epochs" in changes and "max_minutes" not in changes:
        changes["max_minutes"] = None
    return dataclasses.replace(base, **changes)


def parse_ints(text: str) -> tuple[int, ...]:
    """``"32,16,8"`` -> ``(32, 16, 8)``, for options such as ``--strides`` and ``--widths``.

    Raises:
        ValueError: an item is not an integer.
    """
    return tuple(int(item) for item in text.split(","))


def command_line(command: str, options: Mapping[str, Any], flags: Iterable[str]) -> str:
    """The ``manage.py`` line that reproduces a run, rebuilt from its parsed options.

    Args:
        command: the command's name, e.g. ``"train_detector"``.
        options: parsed options; ``dataset`` comes first, then each of ``flags`` that is
            not ``None``, as ``--flag-name value`` (``True``: the bare switch ``--flag-name``).
        flags: option dests, in the order to write them.
    """
    words = ["python", "manage.py", command, "--dataset", str(options["dataset"])]
    for flag in flags:
        value = options.get(flag)
        if value is True:
            words.append(f"--{flag.replace('_', '-')}")
        elif value is not None:
            words += [f"--{flag.replace('_', '-')}", str(value)]
    return shlex.join(words)
