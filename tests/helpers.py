"""Small environments for tests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class MarkedEnv(gym.Env):
    """Observations ``[episode_id, step, rank]``; violations (cost 1) at pseudo-random steps; random episode lengths.

    Every emitted observation and cost is logged, so tests can check where each transition went.
    """

    def __init__(self, rank: int = 0, dict_observations: bool = False, cost_value: float = 1.0):
        self.rank, self.dict_observations, self.cost_value = rank, dict_observations, cost_value
        box = spaces.Box(-1e6, 1e6, (3,), np.float32)
        self.observation_space = spaces.Dict({"marks": box}) if dict_observations else box
        self.action_space = spaces.Box(-1, 1, (2,), np.float32)
        self.episode, self.t, self.length = -1, 0, 0
        self.reset_observations: list[np.ndarray] = []
        self.transitions: list[tuple[np.ndarray, float]] = []  # (obs the action was taken in, cost)

    def _obs(self):
        obs = np.array([self.episode, self.t, self.rank], dtype=np.float32)
        return {"marks": obs} if self.dict_observations else obs

    def _flat(self, obs):
        return obs["marks"] if self.dict_observations else obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        self.length = int(self.np_random.integers(3, 9))
        obs = self._obs()
        self.reset_observations.append(self._flat(obs).copy())
        return obs, {}

    def step(self, action):
        before = self._flat(self._obs()).copy()
        cost = self.cost_value if self.np_random.random() < 0.3 else 0.0
        self.transitions.append((before, cost))
        self.t += 1
        return self._obs(), float(np.sum(action)), self.t >= self.length, False, {"cost": cost}
