"""Safe bandits: one-step tasks whose constrained optimum is known in closed form.

``SafeBandit-v0`` (reward rising with the action, the limit halfway to its peak) and a family of other shapes, so that a
rule that settles in the wrong place on one of them is caught: ``SafeBanditNegative-v0`` (rewards all negative, the
limit far from the peak), ``SafeBanditNearPeak-v0`` (the peak just beyond the limit, little to gain by pushing) and
``SafeBanditContext-v0`` (the limit, hence the optimum, depends on the observation).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class SafeBanditEnv(gym.Env[np.ndarray, np.ndarray]):
    """One-step episodes with a continuous action, a known reward curve and a safety limit on the action.

    - Observation: a context ``c`` in ``Box(-1, 1, (1,), float32)``: ``[1.0]`` always, or, with ``contextual=True``,
      drawn uniformly from ``[-1, 1]`` at each reset.
    - Action: ``a`` in ``Box(-1, 1, (1,), float32)``.
    - Reward: ``reward_offset + reward_scale * a`` (``reward_peak=None``: rising with ``a``) or
      ``reward_offset - reward_scale * (a - reward_peak) ** 2`` (a peak at ``reward_peak``).
    - Cost: ``info["cost"] = 1.0`` when ``a`` exceeds the limit ``safe_limit * c`` (a violation), else ``0.0``.
    - Every episode ends after its single step (``terminated=True``).

    The constrained problem ``max_a reward(a)  s.t.  cost(a) = 0`` has the solution ``a*(c) = min(limit(c), peak)``
    (:attr:`constrained_optimum`). With the defaults (``reward = 10 a``, limit ``0.5``) the unconstrained optimum
    ``a = 1`` (return 10) always violates and the constrained one is ``a* = 0.5`` (return 5); the reward scale of 10 keeps
    an entropy bonus of order 1 from dominating the reward.

    :param safe_limit: Largest safe action (times the context with ``contextual=True``), in ``(-1, 1)``.
    :param reward_scale: Slope (linear reward) or curvature (peaked reward) of the reward, ``> 0``.
    :param reward_peak: Action of the reward's maximum, in ``[-1, 1]``; None: the reward rises linearly with ``a``.
    :param reward_offset: Added to every reward.
    :param contextual: Draw the context ``c`` (the observation) uniformly from ``[-1, 1]`` at each reset; the limit is
        ``safe_limit * c``.
    :param render_mode: ``"rgb_array"`` renders the action range (unsafe part red) and the last action (blue).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        safe_limit: float = 0.5,
        reward_scale: float = 10.0,
        reward_peak: float | None = None,
        reward_offset: float = 0.0,
        contextual: bool = False,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self._last_action = 0.0
        if not -1.0 < safe_limit < 1.0:
            raise ValueError(f"safe_limit must lie in (-1, 1), got {safe_limit}")
        if not reward_scale > 0:
            raise ValueError(f"reward_scale must be > 0, got {reward_scale}")
        if reward_peak is not None and not -1.0 <= reward_peak <= 1.0:
            raise ValueError(f"reward_peak must lie in [-1, 1] (or be None for a linear reward), got {reward_peak}")
        if not np.isfinite(reward_offset):
            raise ValueError(f"reward_offset must be finite, got {reward_offset}")
        self.safe_limit = float(safe_limit)
        self.reward_scale = float(reward_scale)
        self.reward_peak = None if reward_peak is None else float(reward_peak)
        self.reward_offset = float(reward_offset)
        self.contextual = bool(contextual)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self._obs = np.ones(1, dtype=np.float32)

    def limit(self, context: float | None = None) -> float:
        """The largest safe action for ``context`` (default: the current observation's)."""
        c = float(self._obs[0]) if context is None else float(context)
        return self.safe_limit * c if self.contextual else self.safe_limit

    def reward(self, action: float) -> float:
        """The reward of ``action`` (the same for every context)."""
        if self.reward_peak is None:
            return self.reward_offset + self.reward_scale * action
        return self.reward_offset - self.reward_scale * (action - self.reward_peak) ** 2

    @property
    def constrained_optimum(self) -> float:
        """The best safe action ``a*`` for the current observation (closed form; see :meth:`constrained_optimum_at`)."""
        return self.constrained_optimum_at(float(self._obs[0]))

    def constrained_optimum_at(self, context: float) -> float:
        """The best safe action ``a*(c) = min(limit(c), reward_peak)`` for the context ``c``, in closed form."""
        limit = self.limit(context)
        return limit if self.reward_peak is None else min(limit, self.reward_peak)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if self.contextual:
            self._obs = self.np_random.uniform(-1.0, 1.0, size=1).astype(np.float32)
        return self._obs.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        self._last_action = a
        cost = 1.0 if a > self.limit() else 0.0
        return self._obs.copy(), self.reward(a), True, False, {"cost": cost}

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        if self.render_mode != "rgb_array":
            return None
        width = 200
        columns = np.linspace(-1, 1, width)
        image = np.full((20, width, 3), 255, dtype=np.uint8)
        image[:, columns > self.limit()] = (230, 60, 60)
        image[:, np.abs(columns - self._last_action) < 0.02] = (40, 80, 220)
        return image


#: The bandit family: (id, arguments). Each has a different shape of constrained optimum.
BANDITS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("SafeBandit-v0", {}),
    # SafeBandit-v0 shifted down: rewards 10 a - 15 in [-25, -5], the peak at the upper action bound, beyond the limit:
    # a* = 0.5 (reward -10). A rule whose preference does not survive a shift of the rewards fails here.
    ("SafeBanditNegative-v0", dict(safe_limit=0.5, reward_scale=10.0, reward_offset=-15.0)),
    # Rewards in [3.1, 20]; the peak 0.1 beyond the limit: a* = 0.2 (reward 19.9, against 20 at the peak).
    ("SafeBanditNearPeak-v0", dict(safe_limit=0.2, reward_scale=10.0, reward_peak=0.3, reward_offset=20.0)),
    # Rewards 5 (1 + a) in [0, 10]; the limit 0.5 c moves with the observed context c: a*(c) = 0.5 c.
    ("SafeBanditContext-v0", dict(safe_limit=0.5, reward_scale=5.0, reward_offset=5.0, contextual=True)),
)
