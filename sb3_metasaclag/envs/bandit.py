"""``SafeBandit-v0``: a one-step safe bandit whose constrained optimum is known in closed form."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class SafeBanditEnv(gym.Env[np.ndarray, np.ndarray]):
    """One-step episodes with a continuous action, a reward that increases with the action and a safety limit.

    - Observation: ``[1.0]`` (a constant context; the task is a bandit), ``Box(-1, 1, (1,), float32)``.
    - Action: ``a`` in ``Box(-1, 1, (1,), float32)``.
    - Reward: ``reward_scale * a`` (increasing in ``a``; ``reward_scale = 10`` by default).
    - Cost: ``info["cost"] = 1.0`` when ``a > safe_limit`` (a violation), else ``0.0``.
    - Every episode ends after its single step (``terminated=True``).

    The constrained problem ``max_a reward(a)  s.t.  cost(a) = 0`` has the solution
    ``a* = safe_limit`` (``0.5`` by default) with return ``reward_scale * safe_limit`` (``5`` by default); the
    unconstrained optimum is ``a = 1`` (return 10) and always violates. A safe-RL agent must learn to push its action up
    to, and not over, the limit. The reward scale of 10 keeps an entropy bonus of order 1 from dominating the reward.

    :param safe_limit: Largest safe action, in ``(-1, 1)``.
    :param reward_scale: Slope of the reward, ``> 0``.
    :param render_mode: ``"rgb_array"`` renders the action range (unsafe part red) and the last action (blue).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"]}

    def __init__(self, safe_limit: float = 0.5, reward_scale: float = 10.0, render_mode: str | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self._last_action = 0.0
        if not -1.0 < safe_limit < 1.0:
            raise ValueError(f"safe_limit must lie in (-1, 1), got {safe_limit}")
        if reward_scale <= 0:
            raise ValueError(f"reward_scale must be > 0, got {reward_scale}")
        self.safe_limit = float(safe_limit)
        self.reward_scale = float(reward_scale)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self._obs = np.ones(1, dtype=np.float32)

    @property
    def constrained_optimum(self) -> float:
        """The best safe action ``a*`` (closed form: ``safe_limit``)."""
        return self.safe_limit

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return self._obs.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        self._last_action = a
        cost = 1.0 if a > self.safe_limit else 0.0
        return self._obs.copy(), self.reward_scale * a, True, False, {"cost": cost}

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        if self.render_mode != "rgb_array":
            return None
        width = 200
        columns = np.linspace(-1, 1, width)
        image = np.full((20, width, 3), 255, dtype=np.uint8)
        image[:, columns > self.safe_limit] = (230, 60, 60)
        image[:, np.abs(columns - self._last_action) < 0.02] = (40, 80, 220)
        return image
