"""Cost-aware evaluation of a policy (SB3's ``evaluate_policy`` reports rewards only)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from sb3_metasaclag.common.costs import get_cost, is_violation

__all__ = ["evaluate_safe_policy"]


def evaluate_safe_policy(
    model: Any,
    env: str | gym.Env | VecEnv,
    n_episodes: int = 50,
    seed: int = 10_000,
    deterministic: bool = True,
    violation_threshold: float | None = None,
) -> dict[str, float]:
    """Run ``n_episodes`` episodes (seeds ``seed``, ``seed + 1``, ...) and summarise return, cost and safety.

    :param model: Anything with SB3's ``predict(obs, deterministic=...)``.
    :param env: A gymnasium environment, its id, or a VecEnv (SB3's; ``n_episodes`` are then spread over its
        environments as SB3's ``evaluate_policy`` does, seeded with ``seed`` once; returns are summed from the VecEnv's
        rewards, so evaluate on an environment without reward normalisation); it must report ``info["cost"]``.
    :param violation_threshold: A step violates the constraint when its cost exceeds this value (None: the model's
        ``violation_threshold``, or 0 for models without one, such as stock SAC).
    :return: ``return`` (mean episode return), ``cost`` (mean episode cost), ``violation`` (fraction of episodes with
        at least one violating step) and ``success`` (fraction of episodes ending with
        ``info["is_success"]``; NaN if the last step of an episode has no ``"is_success"`` entry).
    """
    env = gym.make(env) if isinstance(env, str) else env
    threshold = float(getattr(model, "violation_threshold", 0.0) if violation_threshold is None else violation_threshold)
    if isinstance(env, VecEnv):
        return _summary(*_vec_episodes(model, env, n_episodes, seed, deterministic, threshold))
    returns, costs, violations, successes = [], [], [], []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=seed + episode)
        total_reward, total_cost, violated = 0.0, 0.0, False
        while True:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, info = env.step(action)
            cost = get_cost(info)
            total_reward += float(reward)
            total_cost += cost
            violated = violated or is_violation(cost, threshold)
            if terminated or truncated:
                break
        returns.append(total_reward)
        costs.append(total_cost)
        violations.append(violated)
        successes.append(float(info["is_success"]) if "is_success" in info else float("nan"))
    return _summary(returns, costs, violations, successes)


def _vec_episodes(
    model: Any, env: VecEnv, n_episodes: int, seed: int, deterministic: bool, threshold: float
) -> tuple[list[float], list[float], list[bool], list[float]]:
    """Episodes of a VecEnv, ``(n_episodes + i) // n_envs`` from its environment ``i`` (as SB3's ``evaluate_policy``)."""
    n_envs = env.num_envs
    targets = np.array([(n_episodes + i) // n_envs for i in range(n_envs)])
    counts = np.zeros(n_envs, dtype=int)
    totals, total_costs, violated = np.zeros(n_envs), np.zeros(n_envs), np.zeros(n_envs, dtype=bool)
    returns: list[float] = []
    costs: list[float] = []
    violations: list[bool] = []
    successes: list[float] = []
    env.seed(seed)
    obs = env.reset()
    while (counts < targets).any():
        actions, _ = model.predict(obs, deterministic=deterministic)
        obs, rewards, dones, infos = env.step(actions)
        for index, info in enumerate(infos):
            cost = get_cost(info)
            totals[index] += float(rewards[index])
            total_costs[index] += cost
            violated[index] |= is_violation(cost, threshold)
            if dones[index]:
                if counts[index] < targets[index]:
                    returns.append(float(totals[index]))
                    costs.append(float(total_costs[index]))
                    violations.append(bool(violated[index]))
                    successes.append(float(info["is_success"]) if "is_success" in info else float("nan"))
                    counts[index] += 1
                totals[index], total_costs[index], violated[index] = 0.0, 0.0, False
    return returns, costs, violations, successes


def _summary(returns: list[float], costs: list[float], violations: list[bool], successes: list[float]) -> dict[str, float]:
    return {
        "return": float(np.mean(returns)),
        "cost": float(np.mean(costs)),
        "violation": float(np.mean(violations)),
        # NaN for tasks that do not report success (SafeBandit-v0, SafeCircle-v0, ...).
        "success": float(np.mean(successes)) if not np.isnan(successes).any() else float("nan"),
    }
