"""``SafeNavigation2D-v0``: a point robot drives to a goal around a hazard disc (pure numpy)."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class SafeNavigation2DEnv(gym.Env):
    """A point robot drives from a start region to a goal while a hazard disc lies on the straight path.

    - Arena: the square ``[-1.5, 1.5]^2``; start ``(-1, 0)`` plus uniform noise in ``[-0.1, 0.1]^2``;
      goal at ``(1, 0)`` (reached within ``goal_radius = 0.1``); hazard disc of radius ``0.4`` at the origin.
    - Observation (``float32``, 6): robot position, goal minus position, hazard centre minus position.
    - Action: velocity command in ``Box(-1, 1, (2,))``; the robot moves by ``dt * action`` with ``dt = 0.05``
      (clipped to the arena).
    - Reward: ``10 * (previous goal distance - goal distance)`` at each step, plus ``10`` when the goal is reached.
    - Cost: ``info["cost"] = 1.0`` while the robot is inside the hazard disc, else ``0.0``.
    - Termination: the goal is reached (``info["is_success"] = True``), or - with ``terminate_on_violation``
      (default, the paper's hard constraints) - the robot enters the hazard. Episodes last at most 200 steps
      (``TimeLimit`` from the registration).

    The straight line to the goal crosses the hazard; the safe route goes around it.
    :func:`scripted_safe_policy` drives around the hazard through a waypoint above it: it reaches the goal in every
    episode without a violation, with an undiscounted return of about ``29`` (28-30) in 45-50 steps
    (``tests/test_envs.py`` checks this on 20 seeds).

    With ``dict_observations=True`` the observation is a ``Dict`` with the same numbers under ``"position"``,
    ``"goal_offset"`` and ``"hazard_offset"`` (for ``MultiInputPolicy``).

    :param terminate_on_violation: End the episode when the robot enters the hazard.
    :param dict_observations: Return Dict observations instead of a flat vector.
    :param render_mode: ``"rgb_array"`` renders a top view (hazard red, goal green, robot blue) as a 200x200 image.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 20}
    dt = 0.05
    arena = 1.5
    goal = (1.0, 0.0)
    goal_radius = 0.1
    hazard = (0.0, 0.0)
    hazard_radius = 0.4
    start = (-1.0, 0.0)
    start_noise = 0.1
    goal_bonus = 10.0
    progress_scale = 10.0

    def __init__(
        self, terminate_on_violation: bool = True, dict_observations: bool = False, render_mode: str | None = None
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.terminate_on_violation = bool(terminate_on_violation)
        self.dict_observations = bool(dict_observations)
        bound = 2 * self.arena + 1
        flat = spaces.Box(-bound, bound, shape=(6,), dtype=np.float32)
        part = spaces.Box(-bound, bound, shape=(2,), dtype=np.float32)
        self.observation_space: spaces.Space = (
            spaces.Dict({"position": part, "goal_offset": part, "hazard_offset": part}) if dict_observations else flat
        )
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._x = 0.0
        self._y = 0.0

    def _obs(self) -> np.ndarray | dict[str, np.ndarray]:
        x, y = self._x, self._y
        obs = np.array([x, y, self.goal[0] - x, self.goal[1] - y, self.hazard[0] - x, self.hazard[1] - y], dtype=np.float32)
        if self.dict_observations:
            return {"position": obs[0:2], "goal_offset": obs[2:4], "hazard_offset": obs[4:6]}
        return obs

    def _goal_distance(self) -> float:
        return math.hypot(self.goal[0] - self._x, self.goal[1] - self._y)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        noise = self.np_random.uniform(-self.start_noise, self.start_noise, size=2)
        self._x = self.start[0] + float(noise[0])
        self._y = self.start[1] + float(noise[1])
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        ax, ay = np.clip(action, -1.0, 1.0).tolist()
        before = self._goal_distance()
        limit = self.arena
        self._x = min(max(self._x + self.dt * ax, -limit), limit)
        self._y = min(max(self._y + self.dt * ay, -limit), limit)
        after = self._goal_distance()
        reward = self.progress_scale * (before - after)
        in_hazard = math.hypot(self._x - self.hazard[0], self._y - self.hazard[1]) < self.hazard_radius
        success = after < self.goal_radius
        if success:
            reward += self.goal_bonus
        terminated = success or (in_hazard and self.terminate_on_violation)
        info = {"cost": 1.0 if in_hazard else 0.0, "is_success": success}
        return self._obs(), reward, terminated, False, info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        if self.render_mode != "rgb_array":
            return None
        size = 200
        scale = size / (2 * self.arena)
        coords = (np.arange(size) + 0.5) / scale - self.arena
        x, y = np.meshgrid(coords, -coords)
        image = np.full((size, size, 3), 255, dtype=np.uint8)
        for (cx, cy), radius, color in (
            (self.hazard, self.hazard_radius, (230, 60, 60)),
            (self.goal, self.goal_radius, (60, 180, 75)),
            ((self._x, self._y), 0.05, (40, 80, 220)),
        ):
            image[(x - cx) ** 2 + (y - cy) ** 2 < radius**2] = color
        return image


def scripted_safe_policy(obs: np.ndarray, waypoint: tuple[float, float] = (0.0, 0.7)) -> np.ndarray:
    """A reference controller for :class:`SafeNavigation2DEnv` that goes around the hazard.

    It heads for ``waypoint`` (above the hazard) until it is past ``x = 0``, then straight for the goal, at full speed.

    :param obs: One observation (shape ``(6,)``) or a batch (shape ``(n, 6)``).
    :return: The velocity command(s), in ``[-1, 1]``.
    """
    obs = np.asarray(obs, dtype=np.float64)
    single = obs.ndim == 1
    obs = np.atleast_2d(obs)
    pos, to_goal = obs[:, 0:2], obs[:, 2:4]
    to_waypoint = np.asarray(waypoint) - pos
    past = (pos[:, 0] >= waypoint[0] - 0.05)[:, None]
    direction = np.where(past, to_goal, to_waypoint)
    norm = np.linalg.norm(direction, axis=1, keepdims=True)
    action = (direction / np.maximum(norm, 1e-8)).astype(np.float32)
    return action[0] if single else action
