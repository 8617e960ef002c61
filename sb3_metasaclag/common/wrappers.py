"""Wrappers that implement the cost-signal conventions of :mod:`sb3_metasaclag.common.costs`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from sb3_metasaclag.common.costs import get_cost, get_costs, is_violation

__all__ = [
    "CostFunction",
    "CostMonitor",
    "HardConstraint",
    "SafetyGymnasiumToGymnasium",
    "VecCostMonitor",
    "ZeroCost",
    "env_name",
]


def env_name(env: gym.Env) -> str:
    """The id of an environment (its class name when it was not made from the registry), for error messages."""
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__


class CostFunction(gym.Wrapper):
    """Give any environment a cost: ``info["cost"] = cost_fn(obs, action, next_obs, info)`` at every step.

    Use it for a task whose constraint you define yourself, e.g. a joint limit::

        env = CostFunction(gym.make("Pendulum-v1"), lambda obs, action, next_obs, info: float(abs(next_obs[2]) > 6.0))

    :param env: The environment.
    :param cost_fn: Called with the observation before the step, the action, the observation after it and the step's
        info; returns the cost (a real number ``>= 0``, checked like any cost).
    """

    def __init__(self, env: gym.Env, cost_fn: Callable[[Any, Any, Any, dict[str, Any]], float]) -> None:
        super().__init__(env)
        if not callable(cost_fn):
            raise TypeError(f"cost_fn must be callable as cost_fn(obs, action, next_obs, info), got {cost_fn!r}")
        self.cost_fn = cost_fn
        self._obs: Any = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["cost"] = self.cost_fn(self._obs, action, obs, info)
        get_cost(info, env_name(self.env))  # validate
        self._obs = obs
        return obs, reward, terminated, truncated, info


class ZeroCost(CostFunction):
    """``info["cost"] = 0`` at every step: a task without a constraint, for comparisons with the same code path (the
    Lagrangian algorithms then reduce to SAC with an idle multiplier)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env, lambda obs, action, next_obs, info: 0.0)


class HardConstraint(gym.Wrapper):
    """Terminate the episode at the first constraint violation (hard constraints, paper Sec. 5.1).

    The violating step is returned with ``terminated=True`` and ``info["constraint_violated"] = True``
    (``False`` on every other step). The cost is validated at every step.

    :param env: Environment that reports ``info["cost"]``.
    :param violation_threshold: A step violates the constraint when its cost exceeds this value.
    """

    def __init__(self, env: gym.Env, violation_threshold: float = 0.0) -> None:
        super().__init__(env)
        self.violation_threshold = float(violation_threshold)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        violated = is_violation(get_cost(info, env_name(self.env)), self.violation_threshold)
        info["constraint_violated"] = violated
        return obs, reward, terminated or violated, truncated, info


class _EpisodeCostAccumulator(gym.Wrapper):
    """Sums the cost and counts the violations of an episode; reports both in the info of its last step."""

    def __init__(self, env: gym.Env, violation_threshold: float) -> None:
        super().__init__(env)
        self.violation_threshold = violation_threshold
        self._episode_cost = 0.0
        self._episode_violations = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._episode_cost, self._episode_violations = 0.0, 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        cost = get_cost(info, env_name(self.env))
        self._episode_cost += cost
        self._episode_violations += int(is_violation(cost, self.violation_threshold))
        if terminated or truncated:
            info["c"] = round(self._episode_cost, 6)
            info["v"] = self._episode_violations
        return obs, reward, terminated, truncated, info


class CostMonitor(Monitor):
    """SB3's :class:`~stable_baselines3.common.monitor.Monitor` that also records the cost of each episode.

    At the end of an episode ``info["episode"]`` holds, next to Monitor's ``r`` (return), ``l`` (length)
    and ``t`` (time), ``c`` (sum of ``info["cost"]`` over the episode) and ``v`` (number of violating steps).
    Both are columns of the monitor CSV file too. Since it *is* a Monitor, SB3 does not wrap it again.

    :param env: Environment that reports ``info["cost"]``.
    :param filename: Monitor CSV file, as for ``Monitor``.
    :param allow_early_resets: As for ``Monitor``.
    :param reset_keywords: As for ``Monitor``.
    :param info_keywords: As for ``Monitor``.
    :param override_existing: As for ``Monitor``.
    :param violation_threshold: A step violates the constraint when its cost exceeds this value.
    """

    def __init__(
        self,
        env: gym.Env,
        filename: str | None = None,
        allow_early_resets: bool = True,
        reset_keywords: tuple[str, ...] = (),
        info_keywords: tuple[str, ...] = (),
        override_existing: bool = True,
        violation_threshold: float = 0.0,
    ) -> None:
        #: True for the monitor an algorithm's env wrapping made: it takes the algorithm's threshold at ``learn()``.
        self.made_by_algorithm = False
        self._accumulator = _EpisodeCostAccumulator(env, float(violation_threshold))
        super().__init__(
            self._accumulator,
            filename=filename,
            allow_early_resets=allow_early_resets,
            reset_keywords=reset_keywords,
            info_keywords=("c", "v", *info_keywords),
            override_existing=override_existing,
        )

    @property
    def violation_threshold(self) -> float:
        """A step violates the constraint when its cost exceeds this value."""
        return self._accumulator.violation_threshold

    def adopt_violation_threshold(self, violation_threshold: float) -> bool:
        """Take the algorithm's threshold if this monitor was made by the algorithm's own env wrapping (SB3's
        ``_wrap_env``); a monitor the user made keeps its own. Returns whether the threshold was taken."""
        if not self.made_by_algorithm:
            return False
        self._accumulator.violation_threshold = float(violation_threshold)
        return True

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        # Monitor copied them into info["episode"]; keep the step info free of one-letter keys.
        info.pop("c", None)
        info.pop("v", None)
        return obs, reward, terminated, truncated, info


class VecCostMonitor(VecEnvWrapper):
    """The cost bookkeeping of :class:`CostMonitor` for a VecEnv whose environments have none (a VecEnv you built).

    At the end of an episode it adds ``c`` (the episode's cost) and ``v`` (its violating steps) to ``info["episode"]``;
    when no ``Monitor`` below wrote that entry, it writes ``r``, ``l`` and ``t`` too, as SB3's ``VecMonitor`` does (the
    rewards are then the ones this wrapper sees: normalised ones if a ``VecNormalize`` is below it). The algorithms of
    the package wrap a VecEnv in it when any of its environments lacks a ``CostMonitor``, so that their logs and
    callbacks such as :class:`~sb3_metasaclag.common.callbacks.SafetyHistoryCallback` read every episode's cost from
    the same place.

    :param venv: The VecEnv, whose step infos report ``info["cost"]``.
    :param violation_threshold: A step violates the constraint when its cost exceeds this value.
    """

    def __init__(self, venv: VecEnv, violation_threshold: float = 0.0) -> None:
        super().__init__(venv)
        #: True for the wrapper an algorithm's env wrapping made: it takes the algorithm's threshold at ``learn()``.
        self.made_by_algorithm = False
        self.violation_threshold = float(violation_threshold)
        self._start = time.time()
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._costs = np.zeros(self.num_envs)
        self._violations = np.zeros(self.num_envs, dtype=np.int64)

    def adopt_violation_threshold(self, violation_threshold: float) -> bool:
        """As :meth:`CostMonitor.adopt_violation_threshold`."""
        if not self.made_by_algorithm:
            return False
        self.violation_threshold = float(violation_threshold)
        return True

    def reset(self) -> Any:
        obs = self.venv.reset()
        for tally in (self._returns, self._lengths, self._costs, self._violations):
            tally[:] = 0
        return obs

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        costs = get_costs(infos)
        self._returns += np.asarray(rewards, dtype=np.float64).reshape(self.num_envs)
        self._lengths += 1
        self._costs += costs
        self._violations += is_violation(costs, self.violation_threshold)
        new_infos = list(infos)
        for index in np.flatnonzero(dones):
            episode = dict(infos[index].get("episode") or {})
            if "r" not in episode:
                episode.update(
                    r=round(float(self._returns[index]), 6),
                    l=int(self._lengths[index]),
                    t=round(time.time() - self._start, 6),
                )
            episode.update(c=round(float(self._costs[index]), 6), v=int(self._violations[index]))
            new_infos[index] = {**infos[index], "episode": episode}
            for tally in (self._returns, self._lengths, self._costs, self._violations):
                tally[index] = 0
        return obs, rewards, dones, new_infos


class SafetyGymnasiumToGymnasium(gym.Wrapper):
    """Turn a 6-tuple safe environment into a gymnasium 5-tuple one with ``info["cost"]``.

    Safety-Gymnasium's ``safety_gymnasium.make`` returns environments whose ``step`` gives
    ``(obs, reward, cost, terminated, truncated, info)``; SB3 expects ``(obs, reward, terminated, truncated, info)``.

    :param env: An environment whose ``step`` returns 6 values.
    """

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        result = self.env.step(action)
        if len(result) != 6:
            raise ValueError(
                f"SafetyGymnasiumToGymnasium expects step() to return (obs, reward, cost, terminated, truncated, info), "
                f"got a tuple of {len(result)} values. A 5-tuple env already follows gymnasium's API: "
                "report the cost in info['cost'] and do not use this wrapper."
            )
        obs, reward, cost, terminated, truncated, info = result
        info["cost"] = float(cost)
        get_cost(info)  # validate
        return obs, reward, terminated, truncated, info
