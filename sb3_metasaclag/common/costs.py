"""The cost-signal contract shared by every algorithm, wrapper and environment of the package.

An environment reports its constraint cost as ``info["cost"]``: a finite float ``>= 0`` at every step.
A transition is a *violation* when its cost exceeds a threshold (``0`` by default), which is the
indicator ``c = 1[cost > threshold]`` of the paper (Eq. 2).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["MissingCostError", "get_cost", "get_costs"]

_HOW_TO_FIX = (
    "Every environment used with sb3_metasaclag must report its constraint cost as info['cost'] "
    "(a finite float >= 0) at every step. For a Safety-Gymnasium env built with safety_gymnasium.make, "
    "wrap it with sb3_metasaclag.common.wrappers.SafetyGymnasiumToGymnasium (or use its "
    "'Safety<Task>Gymnasium-v0' id with gymnasium.make); for your own env, add the cost to the step info."
)


class MissingCostError(KeyError):
    """The step info of an environment has no ``"cost"`` entry."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


def get_cost(info: dict[str, Any]) -> float:
    """Read and validate ``info["cost"]``.

    :param info: The info dict returned by ``env.step``.
    :return: The cost as a Python float.
    :raises MissingCostError: If there is no ``"cost"`` key.
    :raises ValueError: If the cost is NaN, infinite, negative or not a scalar.
    """
    try:
        raw = info["cost"]
    except KeyError:
        raise MissingCostError(f"The step info has no 'cost' entry (keys: {sorted(info)}). {_HOW_TO_FIX}") from None
    try:
        cost = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"info['cost'] must be a scalar number, got {raw!r} of type {type(raw).__name__}.") from None
    if not math.isfinite(cost):
        raise ValueError(f"info['cost'] must be finite, got {cost}.")
    if cost < 0:
        raise ValueError(f"info['cost'] must be >= 0, got {cost}.")
    return cost


def get_costs(infos: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> np.ndarray:
    """Validated costs of a vectorized step, one per environment (float32 array of shape ``(n_envs,)``)."""
    return np.array([get_cost(info) for info in infos], dtype=np.float32)
