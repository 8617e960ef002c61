"""``SafeCircle-v0`` / ``SafeCircleSoft-v0``: run along a circle that leaves the allowed region (pure numpy)."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class SafeCircleEnv(gym.Env):
    """A point robot is rewarded for running counter-clockwise along a circle, but walls cut the circle's sides off.

    In the spirit of Safety-Gymnasium's Circle tasks (the paper's Car-Circle2), small enough to learn in minutes:

    - Arena: the plane; the robot starts at the origin plus uniform noise in ``[-0.1, 0.1]^2``.
    - Observation (``float32``, 4): position ``(x, y)`` and the signed distances to the walls,
      ``wall_x - x`` and ``wall_x + x``.
    - Action: velocity command in ``Box(-1, 1, (2,))``, rescaled to at most unit speed; the robot moves by
      ``dt * velocity`` with ``dt = 0.05``.
    - Reward: ``reward_scale * v_t / (1 + |r - radius|)`` per step, with ``v_t = (x v_y - y v_x) / r`` the
      counter-clockwise tangential speed and ``r`` the distance from the origin (Safety-Gymnasium's Circle reward).
      The best unconstrained behaviour runs along the circle of ``radius = 1`` at full speed.
    - Cost: ``info["cost"] = 1.0`` while ``|x| > wall_x`` (``wall_x = 0.6``): the walls cut off both sides of the
      circle, so running along it violates the constraint twice per lap.
    - Termination: with ``terminate_on_violation`` (``SafeCircle-v0``, the paper's hard constraints) the episode
      ends when the robot crosses a wall; ``SafeCircleSoft-v0`` lets it continue and counts every violating step.
      Episodes last 200 steps (``TimeLimit`` from the registration).

    Known answers (``tests/test_envs.py``, 20 seeds): :func:`scripted_circle_policy` with ``safe=True`` runs along
    the circle and along the inside of the walls, never violating, for a return of about 14.2; with ``safe=False`` it
    runs along the whole circle: about 18.6 in the soft variant, with about 110 violating steps per episode.

    :param terminate_on_violation: End the episode when the robot crosses a wall.
    :param radius: Radius of the rewarded circle.
    :param wall_x: Half-width of the allowed region ``|x| <= wall_x``, in ``(0, radius)``.
    :param reward_scale: Scale of the reward.
    :param render_mode: ``"rgb_array"`` renders a top view (forbidden sides red, circle green, robot blue), 200x200.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 20}
    dt = 0.05
    start_noise = 0.1

    def __init__(
        self,
        terminate_on_violation: bool = True,
        radius: float = 1.0,
        wall_x: float = 0.6,
        reward_scale: float = 0.1,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        if radius <= 0:
            raise ValueError(f"radius must be > 0, got {radius}")
        if not 0 < wall_x < radius:
            raise ValueError(f"wall_x must lie in (0, radius) = (0, {radius}), got {wall_x}")
        if reward_scale <= 0:
            raise ValueError(f"reward_scale must be > 0, got {reward_scale}")
        self.terminate_on_violation = bool(terminate_on_violation)
        self.radius, self.wall_x, self.reward_scale = float(radius), float(wall_x), float(reward_scale)
        bound = 10.0
        self.observation_space = spaces.Box(-bound, bound, shape=(4,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._position = np.zeros(2)

    def _obs(self) -> np.ndarray:
        x, y = self._position
        return np.array([x, y, self.wall_x - x, self.wall_x + x], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._position = self.np_random.uniform(-self.start_noise, self.start_noise, size=2)
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        velocity = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        speed = float(np.hypot(*velocity))
        if speed > 1.0:
            velocity = velocity / speed
        # Limits of the observation space: the robot cannot leave the arena.
        self._position = np.clip(self._position + self.dt * velocity, -5.0, 5.0)
        x, y = self._position
        r = math.hypot(x, y)
        tangential = (x * velocity[1] - y * velocity[0]) / max(r, 1e-8)
        reward = self.reward_scale * tangential / (1.0 + abs(r - self.radius))
        violation = abs(x) > self.wall_x
        info = {"cost": 1.0 if violation else 0.0}
        return self._obs(), float(reward), bool(violation and self.terminate_on_violation), False, info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        if self.render_mode != "rgb_array":
            return None
        size, half = 200, 1.5 * self.radius
        coords = (np.arange(size) + 0.5) / size * 2 * half - half
        x, y = np.meshgrid(coords, -coords)
        image = np.full((size, size, 3), 255, dtype=np.uint8)
        image[np.abs(x) > self.wall_x] = (230, 60, 60)
        image[np.abs(np.hypot(x, y) - self.radius) < 0.02 * self.radius] = (60, 180, 75)
        image[np.hypot(x - self._position[0], y - self._position[1]) < 0.05 * self.radius] = (40, 80, 220)
        return image


def scripted_circle_policy(obs: np.ndarray, safe: bool = True, radius: float = 1.0, margin: float = 0.08) -> np.ndarray:
    """A reference controller for :class:`SafeCircleEnv` (default ``radius`` and walls read from the observation).

    It runs counter-clockwise along the circle at full speed, steering back onto it in proportion to the radial error.
    With ``safe=True``, within ``margin`` of a wall it runs along the wall instead (up the right wall, down the left
    one: counter-clockwise around the origin), so that it never crosses it.

    :param obs: One observation (shape ``(4,)``).
    :return: The velocity command, in ``[-1, 1]^2``.
    """
    x, y, to_right, to_left = (float(value) for value in np.asarray(obs).reshape(4))
    wall_x = (to_right + to_left) / 2
    r = math.hypot(x, y)
    if r < 1e-6:
        return np.array([0.0, 1.0], dtype=np.float32)
    tangent = np.array([-y, x]) / r
    radial = np.array([x, y]) / r
    direction = tangent + 4.0 * (radius - r) * radial
    if safe and abs(x) >= wall_x - margin and np.sign(direction[0]) == np.sign(x):
        direction = np.array([-(abs(x) - (wall_x - margin)) * np.sign(x) * 10.0, np.sign(x) * 1.0])
    return (direction / max(float(np.linalg.norm(direction)), 1e-8)).astype(np.float32)
