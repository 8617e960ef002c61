"""``SafeEggManipulate-v0``: the Shadow hand rotates an egg without dropping or squeezing it (paper Appendix C)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils.ezpickle import EzPickle

from sb3_metasaclag.envs.helpers import SelfTruncating, require_robotics

try:
    import mujoco
    from gymnasium_robotics.envs.shadow_dexterous_hand.manipulate_egg import MujocoHandEggEnv
except ImportError as _error:  # pragma: no cover - depends on the installation
    _IMPORT_ERROR: ImportError | None = _error
    MujocoHandEggEnv = object  # type: ignore[assignment,misc]
else:
    _IMPORT_ERROR = None


class SafeEggManipulateEnv(SelfTruncating, MujocoHandEggEnv, EzPickle):
    """The Shadow hand rotates an egg on its palm to a target orientation; it must not drop or squeeze the egg.

    Gymnasium-Robotics' ``HandManipulateEggRotate-v1`` (random target rotation about all axes, position ignored) with
    the paper's constraint added:

    - **Observation** (``Dict``): ``observation`` (61: 24 hand joint angles and velocities, egg velocity, egg pose),
      ``achieved_goal`` and ``desired_goal`` (7: position and quaternion of the egg and of the target).
    - **Action** (``Box(-1, 1, (20,))``): absolute targets of the hand's 20 actuated joints, scaled to their ranges.
    - **Reward**: Gymnasium-Robotics' (``sparse``: ``-1`` until the orientation is within 0.1 rad of the target, then 0;
      ``dense``: minus the orientation distance).
    - **Cost**: ``info["cost"] = 1.0`` when during the step the egg was **dropped** (its centre below ``drop_height``,
      0.10 m: the palm is at about 0.14 m and the egg rests on the floor at 0.03 m) or **squeezed**: the sum of the
      normal forces of all contacts on the egg exceeded ``max_force`` (20 N) at **any** of the 20 physics substeps of the
      step (each substep is checked: the state at the end of a step understates the peaks). ``info["max_contact_force"]``
      (N) and ``info["dropped"]`` report both; ``info["cost"]`` is ``0.0`` otherwise. A dropped egg stays violating.
    - **Success**: ``info["is_success"]``. **Episode**: 100 steps (25 Hz, 4 s).

    :param reward_type: ``"sparse"`` or ``"dense"``.
    :param max_force: Largest allowed total normal contact force on the egg (N).
    :param drop_height: Height (m) of the egg's centre below which it counts as dropped.
    :param max_episode_steps: Episode length; the environment truncates by itself (see :func:`check_episode_steps`).
    :param kwargs: Passed to Gymnasium-Robotics' ``MujocoHandEggEnv`` (``render_mode``, ``width``, ``height``, ...).
    """

    def __init__(
        self,
        reward_type: str = "sparse",
        max_force: float = 20.0,
        drop_height: float = 0.10,
        max_episode_steps: int = 100,
        **kwargs: Any,
    ) -> None:
        require_robotics(_IMPORT_ERROR)
        if reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type must be 'sparse' or 'dense', got {reward_type!r}")
        if not max_force > 0:
            raise ValueError(f"max_force must be positive (N), got {max_force}")
        self.max_force = float(max_force)
        self.drop_height = float(drop_height)
        self._init_truncation(max_episode_steps)
        self._max_contact_force = 0.0
        self._force = np.zeros(6)
        MujocoHandEggEnv.__init__(self, target_position="ignore", target_rotation="xyz", reward_type=reward_type, **kwargs)
        self._egg_geom = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, "object")
        EzPickle.__init__(self, reward_type, max_force, drop_height, max_episode_steps, **kwargs)

    def egg_contact_force(self) -> float:
        """Sum of the normal forces (N) of the current contacts that involve the egg."""
        ncon = self.data.ncon
        if ncon == 0:
            return 0.0
        geoms = self.data.contact.geom[:ncon]
        total = 0.0
        for index in np.flatnonzero((geoms == self._egg_geom).any(axis=1)):
            mujoco.mj_contactForce(self.model, self.data, int(index), self._force)
            total += self._force[0]
        return float(total)

    def _mujoco_step(self, action: np.ndarray) -> None:
        # The same n_substeps as Gymnasium-Robotics, one at a time so that every substep's contact force is checked.
        peak = 0.0
        for _ in range(self.n_substeps):
            mujoco.mj_step(self.model, self.data)
            peak = max(peak, self.egg_contact_force())
        self._max_contact_force = peak

    def egg_height(self) -> float:
        """Height (m) of the egg's centre."""
        return float(self._utils.get_joint_qpos(self.model, self.data, "object:joint")[2])

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)  # truncated at max_episode_steps
        dropped = self.egg_height() < self.drop_height
        info["dropped"] = bool(dropped)
        info["max_contact_force"] = self._max_contact_force
        info["cost"] = float(dropped or self._max_contact_force > self.max_force)
        return obs, float(reward), terminated, truncated, info
