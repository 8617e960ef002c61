"""Callbacks for safe-RL training runs."""

from __future__ import annotations

import csv
import os
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.utils import safe_mean

__all__ = [
    "CostEvaluationMixin",
    "CostLoggerCallback",
    "EpisodeRecorderCallback",
    "OuterValuesCallback",
    "SafeEvalCallback",
    "SafetyHistoryCallback",
    "outer_values",
    "record_episode_costs",
]


def record_episode_costs(logger: Any, ep_info_buffer: Any) -> None:
    """Record ``rollout/ep_cost_mean``, ``rollout/ep_violations_mean`` (violating steps per episode) and
    ``rollout/violation_rate`` (share of episodes with a violating step) from the episode infos of a
    :class:`~sb3_metasaclag.common.wrappers.CostMonitor` (or ``VecCostMonitor``) in SB3's ``ep_info_buffer``; nothing
    when no episode with a cost has finished."""
    episodes = [info for info in (ep_info_buffer or []) if "c" in info]
    if episodes:
        logger.record("rollout/ep_cost_mean", safe_mean([info["c"] for info in episodes]))
        logger.record("rollout/ep_violations_mean", safe_mean([info["v"] for info in episodes]))
        logger.record("rollout/violation_rate", float(np.mean([info["v"] > 0 for info in episodes])))


def outer_values(model: Any) -> dict[str, float]:
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
    ``violations_mean`` (violating steps per episode over the last ``window`` episodes: the paper's windowed
    "violation rate", the curve of its Fig. 2), ``epsilon``, ``alpha``, ``nu``.
    It works with stock SB3 ``SAC`` too (wrap its env in a :class:`~sb3_metasaclag.common.wrappers.CostMonitor`):
    ``epsilon`` and ``nu`` are then NaN and ``alpha`` is SAC's entropy coefficient.

    :param window: Number of episodes of the violation-rate window (the paper's "specific window of episodes").
    """

    def __init__(self, window: int = 100, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.window = window
        self.history: dict[str, list[float]] = {
            key: [] for key in ("timestep", "return", "cost", "violations", "violations_mean", "epsilon", "alpha", "nu")
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
            history["violations_mean"].append(float(np.mean(history["violations"][-self.window :])))
            for key, value in outer_values(self.model).items():
                history[key].append(value)
        return True


class CostLoggerCallback(BaseCallback):
    """Log ``rollout/ep_cost_mean``, ``rollout/ep_violations_mean`` (violating steps per episode) and
    ``rollout/violation_rate`` (share of episodes with a violating step) for any SB3 algorithm, stock ``SAC`` included,
    from the episode infos of a :class:`~sb3_metasaclag.common.wrappers.CostMonitor`.

    The package's own algorithms log both by themselves; this callback gives stock algorithms the same keys, so that
    TensorBoard and the console compare like with like.
    """

    def _on_step(self) -> bool:
        dones = self.locals.get("dones")
        if dones is not None and np.any(dones):
            record_episode_costs(self.logger, self.model.ep_info_buffer)
        return True


class CostEvaluationMixin:
    """Cost of the evaluation episodes, for a subclass of SB3's ``EvalCallback`` (whose evaluation env is wrapped in a
    :class:`~sb3_metasaclag.common.wrappers.CostMonitor`): after each evaluation it logs ``eval/mean_cost`` and
    ``eval/violation_rate`` (share of episodes with a violating step) and calls :meth:`_on_cost_evaluation`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cost_buffer: list[float] = []
        self._violation_buffer: list[float] = []

    def _log_success_callback(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        super()._log_success_callback(locals_, globals_)  # type: ignore[misc]
        episode = locals_["info"].get("episode") if locals_["done"] else None
        if episode is not None and "c" in episode:
            self._cost_buffer.append(float(episode["c"]))
            self._violation_buffer.append(float(episode["v"]))

    def _on_step(self) -> bool:
        evaluating = self.eval_freq > 0 and self.n_calls % self.eval_freq == 0  # type: ignore[attr-defined]
        if evaluating:
            self._cost_buffer, self._violation_buffer = [], []
        continue_training = super()._on_step()  # type: ignore[misc]
        if evaluating and self._cost_buffer:
            cost, rate = float(np.mean(self._cost_buffer)), float(np.mean(np.asarray(self._violation_buffer) > 0))
            self.logger.record("eval/mean_cost", cost)  # type: ignore[attr-defined]
            self.logger.record("eval/violation_rate", rate)  # type: ignore[attr-defined]
            self._on_cost_evaluation(cost, rate)
        return bool(continue_training)

    def _on_cost_evaluation(self, mean_cost: float, violation_rate: float) -> None:
        """Hook called after each evaluation with its cost figures (``_cost_buffer``, ``_violation_buffer`` hold the
        episodes')."""


class SafeEvalCallback(CostEvaluationMixin, EvalCallback):
    """SB3's ``EvalCallback`` that also records the cost of each evaluation episode.

    The evaluation env must be wrapped in a :class:`~sb3_metasaclag.common.wrappers.CostMonitor`. Besides
    ``eval/mean_reward`` it logs ``eval/mean_cost`` and ``eval/violation_rate`` (share of episodes with at least one
    violating step), and ``evaluations.npz`` gets two more arrays, ``costs`` and ``violations`` (violating steps of
    each episode), shaped like ``results``: RL Zoo's ``all_plots -k costs`` can plot them. Arguments as for
    ``EvalCallback``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.evaluations_costs: list[list[float]] = []
        self.evaluations_violations: list[list[float]] = []

    def _on_cost_evaluation(self, mean_cost: float, violation_rate: float) -> None:
        self.evaluations_costs.append(self._cost_buffer)
        self.evaluations_violations.append(self._violation_buffer)
        if self.log_path is not None:
            arrays: dict[str, Any] = dict(
                timesteps=self.evaluations_timesteps,
                results=self.evaluations_results,
                ep_lengths=self.evaluations_length,
                costs=self.evaluations_costs,
                violations=self.evaluations_violations,
            )
            if self.evaluations_successes:
                arrays["successes"] = self.evaluations_successes
            np.savez(self.log_path, **arrays)


class _FileCallback(BaseCallback):
    """A callback that writes to ``self._file`` and closes it when training ends."""

    _file: Any = None

    def _on_training_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class OuterValuesCallback(_FileCallback):
    """Write ``epsilon``, ``alpha`` and ``nu`` after every update (every ``every`` environment steps) to a CSV file
    with columns ``timestep, n_updates, epsilon, alpha, nu`` (NaN where the algorithm has no such value, as stock SAC has
    no ``epsilon``). Rows are flushed as they come, so a run that dies keeps its curve so far.

    :param path: The CSV file (its directory is created).
    :param every: Record every this many environment steps (1: every step, i.e. after every update of SAC-style
        algorithms with ``train_freq=1``).
    """

    def __init__(self, path: str, every: int = 1, verbose: int = 0) -> None:
        super().__init__(verbose)
        if every < 1:
            raise ValueError(f"every must be >= 1 environment step, got {every}")
        self.path = path
        self.every = int(every)
        self._file: Any = None
        self._writer: Any = None

    def _on_training_start(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        new = not os.path.exists(self.path)
        self._file = open(self.path, "a", newline="")
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(["timestep", "n_updates", "epsilon", "alpha", "nu"])

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            values = outer_values(self.model)
            updates = getattr(self.model, "_n_updates", 0)
            self._writer.writerow([self.num_timesteps, updates, *(f"{values[key]:.6g}" for key in ("epsilon", "alpha", "nu"))])
        if self.num_timesteps % 1000 == 0:
            self._file.flush()
        return True


class EpisodeRecorderCallback(_FileCallback):
    """Write one CSV row per finished training episode: ``timestep``, ``return``, ``length``, ``cost``, ``violations``
    (violating steps; both NaN without a :class:`~sb3_metasaclag.common.wrappers.CostMonitor`) and the entries of
    ``info_keys`` that the episode's last ``info`` holds (a task's success or smoothness metrics). The columns are fixed by
    the first episode; rows are flushed as they come.

    :param path: The CSV file (overwritten).
    :param info_keys: End-of-episode ``info`` entries to record.
    """

    def __init__(self, path: str, info_keys: tuple[str, ...] = ("is_success",), verbose: int = 0) -> None:
        super().__init__(verbose)
        self.path = path
        self.info_keys = tuple(info_keys)
        self._file: Any = None
        self._columns: list[str] = []

    def _on_step(self) -> bool:
        for done, info in zip(self.locals.get("dones", []), self.locals.get("infos", [])):
            episode = info.get("episode") if done else None
            if episode is None:
                continue
            row = {
                "timestep": self.num_timesteps,
                "return": episode["r"],
                "length": episode["l"],
                "cost": episode.get("c", float("nan")),
                "violations": episode.get("v", float("nan")),
                **{key: float(info[key]) for key in self.info_keys if key in info},
            }
            if self._file is None:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
                self._columns = list(row)
                self._file = open(self.path, "w", newline="")
                self._file.write(",".join(self._columns) + "\n")
            self._file.write(",".join(str(row.get(column, float("nan"))) for column in self._columns) + "\n")
            self._file.flush()
        return True
