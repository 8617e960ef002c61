"""The cost-signal contract shared by every algorithm, wrapper and environment of the package.

An environment reports its constraint cost as ``info["cost"]``: a finite float ``>= 0`` at every step.
A transition is a *violation* when its cost exceeds a threshold (``0`` by default), which is the
indicator ``c = 1[cost > threshold]`` of the paper (Eq. 2).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["MissingCostError", "get_cost", "get_costs", "is_violation"]

#: The largest cost the float32 buffers can store (a larger finite cost would be stored as inf).
FLOAT32_MAX = float(np.finfo(np.float32).max)

_HOW_TO_FIX = (
    "Every environment used with sb3_metasaclag must report its constraint cost as info['cost'] "
    "(a finite float >= 0) at every step. For a Safety-Gymnasium env built with safety_gymnasium.make, "
    "wrap it with sb3_metasaclag.common.wrappers.SafetyGymnasiumToGymnasium (or use its "
    "'Safety<Task>Gymnasium-v0' id with gymnasium.make); for your own env, add the cost to the step info, or wrap it "
    "with sb3_metasaclag.common.wrappers.CostFunction(env, cost_fn) (cost_fn(obs, action, next_obs, info) -> float); "
    "for a task without any cost, sb3_metasaclag.common.wrappers.ZeroCost(env)."
)


class MissingCostError(KeyError):
    """The step info of an environment has no ``"cost"`` entry."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


def get_cost(info: dict[str, Any], source: str | None = None) -> float:
    """Read and validate ``info["cost"]``.

    :param info: The info dict returned by ``env.step``.
    :param source: The environment that returned it (its id), named in the error messages.
    :return: The cost as a Python float.
    :raises MissingCostError: If there is no ``"cost"`` key.
    :raises ValueError: If the cost is not a real number (a string, a bool, an array), NaN, infinite, negative or too
        large for float32.
    """
    try:
        raw = info["cost"]
    except KeyError:
        where = f" of {source}" if source else ""
        raise MissingCostError(f"The step info{where} has no 'cost' entry (keys: {sorted(info)}). {_HOW_TO_FIX}") from None
    # Real numbers only: a string ("1"), a bool or an array would otherwise be converted silently. A 0-d numeric
    # array is a number.
    if isinstance(raw, np.ndarray) and raw.ndim == 0 and raw.dtype.kind in "iuf":
        raw = raw.item()
    if isinstance(raw, (bool, np.bool_)) or not isinstance(raw, (int, float, np.integer, np.floating)):
        shape = f" of shape {raw.shape}" if isinstance(raw, np.ndarray) else ""
        raise ValueError(
            f"info['cost'] must be a real number (int or float), got {raw!r} of type {type(raw).__name__}{shape}."
        )
    cost = float(raw)
    if not math.isfinite(cost):
        raise ValueError(f"info['cost'] must be finite, got {cost}.")
    if cost < 0:
        raise ValueError(f"info['cost'] must be >= 0, got {cost}.")
    if cost > FLOAT32_MAX:
        raise ValueError(
            f"info['cost'] must fit in float32 (the replay buffer's dtype, at most {FLOAT32_MAX:.4g}), got {cost}."
        )
    return cost


def get_costs(infos: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> np.ndarray:
    """Validated costs of a vectorized step, one per environment (float32 array of shape ``(n_envs,)``)."""
    return np.array([get_cost(info) for info in infos], dtype=np.float32)


def is_violation(cost: Any, threshold: float = 0.0) -> Any:
    """Whether a step violates the constraint: its cost exceeds ``threshold`` (the paper's ``c = 1[cost > threshold]``).

    The one place the package decides it: the monitors, the replay buffer, the training logs and the evaluation all
    call this function with the algorithm's ``violation_threshold``.

    :param cost: A step's cost (a float) or an array of costs.
    :param threshold: The violation threshold (``violation_threshold`` of the algorithms; 0 by default).
    :return: A bool for a float, a boolean array for an array.
    """
    if isinstance(cost, np.ndarray):
        return cost > threshold
    return bool(cost > threshold)
