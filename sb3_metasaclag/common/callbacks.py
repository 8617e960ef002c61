"""Callbacks for safe-RL training runs."""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["SafetyHistoryCallback"]


class SafetyHistoryCallback(BaseCallback):
    """Record, during training, what the paper's Fig. 2 plots: episode return, the windowed violation rate, and the
    values of ``epsilon``, ``alpha`` and ``nu``.

    ``history`` holds one row per finished episode: ``timestep``, ``return``, ``cost``, ``violations``,
    ``violation_rate`` (violations per episode over the last ``window`` episodes), ``epsilon``, ``alpha``, ``nu``.

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
            model: Any = self.model
            history["epsilon"].append(float(model.epsilon.item()))
            history["alpha"].append(float(model.alpha.item()))
            history["nu"].append(float(model.nu.item()))
        return True
