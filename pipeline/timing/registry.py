"""Every model of "by chance" by name: the Monte Carlo nulls and the closed-form screen.

The one list the CLI's ``--null`` choices, the claim loader and the analysis read. A new null
is a class in ``nulls.py`` (name, options as ``__init__`` keywords, moves / preserves /
destroys / caveat, ``draw``) and one line here.
"""

from __future__ import annotations

from typing import Any

from .nulls import CircularShift, Jitter, Model, Null, WeekdayHourShuffle
from .screen import PoissonScreen

NULLS: dict[str, type[Null]] = {
    "shuffle-weekday-hour": WeekdayHourShuffle,
    "jitter": Jitter,
    "circular": CircularShift,
}
SCREENS: dict[str, type[Model]] = {"poisson": PoissonScreen}
MODELS: dict[str, type[Model]] = {**NULLS, **SCREENS}


def make_null(name: str, **options: Any) -> Model:
    """The model called ``name`` with ``options``; a clear error naming the choices otherwise."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown null {name!r}; choose one of {', '.join(MODELS)}") from None
    accepted = cls.options()
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"null {name!r} takes no option {', '.join(map(repr, unknown))}; it takes "
                         f"{', '.join(f'{k} (default {v!r})' for k, v in accepted.items()) or 'none'}")
    return cls(**options)
