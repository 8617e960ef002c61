"""Callbacks for safe-RL training runs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["SafetyHistoryCallback"]


def _outer_values(model: Any) -> dict[str, float]:
    """``epsilon``, ``alpha`` and ``nu`` of a model of the package, or of stock SAC (NaN where it has none)."""
    nan = float("nan")
    if hasattr(model, "alpha"):
        alpha = float(model.alpha.item())
    elif isinstance(getattr(model, "log_ent_coef", None), th.Tensor):
        alpha = float(model.log_ent_coef.exp().item())
    else:  # SAC with a fixed entropy coefficient
        alpha = float(getattr(model, "ent_coef_tensor", th.tensor(nan)).item())
    epsilon = float(model.epsilon.item()) if hasattr(model, "epsilon") else nan
    nu = float(model.nu.item()) if hasattr(model, "nu") else nan
    return {"epsilon": epsilon, "alpha": alpha, "nu": nu}


class SafetyHistoryCallback(BaseCallback):
    """Record, during training, what the paper's Fig. 2 plots: episode return, the windowed violation rate, and the
    values of ``epsilon``, ``alpha`` and ``nu``.

    ``history`` holds one row per finished episode: ``timestep``, ``return``, ``cost``, ``violations``,
    ``violation_rate`` (violations per episode over the last ``window`` episodes), ``epsilon``, ``alpha``, ``nu``.
    It works with stock SB3 ``SAC`` too (wrap its env in a :class:`~sb3_metasaclag.common.wrappers.CostMonitor`):
    ``epsilon`` and ``nu`` are then NaN and ``alpha`` is SAC's entropy coefficient.

    :param window: Number of episodes of the violation-rate window (the paper's "specific window of episodes").
    """

    def __init__(self, window: int = 100, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.window = window
        self.history: dict[str, list[float]] = {
            key: [] for key in ("timestep", "return", "cost", "violations", "violation_rate", "epsilon", "alpha", "nu")
        }

    def _on_step(self) -> bool:
        infos: list[dict[str, Any]] = self.locals.get("infos", [])
        for info in infos:
            episode = info.get("episode")
            if episode is None or "v" not in episode:
                continue
            history = self.history
            history["timestep"].append(self.num_timesteps)
            history["return"].append(float(episode["r"]))
            history["cost"].append(float(episode["c"]))
            history["violations"].append(float(episode["v"]))
            history["violation_rate"].append(float(np.mean(history["violations"][-self.window :])))
            for key, value in _outer_values(self.model).items():
                history[key].append(value)
        return True
