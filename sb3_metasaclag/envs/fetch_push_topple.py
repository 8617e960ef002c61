"""``SafeFetchPushTopple-v0``: Fetch pushes a tall box to a goal without toppling it (paper Appendix C, "Push Topple")."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils.ezpickle import EzPickle

from sb3_metasaclag.envs.helpers import (
    SelfTruncating,
    require_robotics,
    robotics_assets_dir,
    tilt_angle,
    write_model,
)

try:
    from gymnasium_robotics.envs.fetch import MujocoFetchEnv
except ImportError as _error:  # pragma: no cover - depends on the installation
    _IMPORT_ERROR: ImportError | None = _error
    MujocoFetchEnv = object  # type: ignore[assignment,misc]
else:
    _IMPORT_ERROR = None

#: Half-height of the box (m): the box is 5 cm x 5 cm x 11 cm, FetchPush's cube stretched upwards.
BOX_HALF_HEIGHT = 0.055
TABLE_TOP = 0.4


def _model_xml(box_half_height: float, box_mass: float) -> str:
    fetch = robotics_assets_dir() / "fetch"
    return f"""<?xml version="1.0" encoding="utf-8"?>
<mujoco>
  <compiler angle="radian" coordinate="local" meshdir="{robotics_assets_dir() / 'stls' / 'fetch'}"
            texturedir="{robotics_assets_dir() / 'textures'}"/>
  <option timestep="0.002"><flag warmstart="enable"/></option>
  <include file="{fetch / 'shared.xml'}"/>
  <worldbody>
    <geom name="floor0" pos="0.8 0.75 0" size="0.85 0.70 1" type="plane" condim="3" material="floor_mat"/>
    <body name="floor0" pos="0.8 0.75 0">
      <site name="target0" pos="0 0 0.5" size="0.02 0.02 0.02" rgba="1 0 0 1" type="sphere"/>
    </body>
    <include file="{fetch / 'robot.xml'}"/>
    <body pos="1.3 0.75 0.2" name="table0">
      <geom size="0.25 0.35 0.2" type="box" mass="2000" material="table_mat"/>
    </body>
    <body name="object0" pos="0.025 0.025 {box_half_height}">
      <joint name="object0:joint" type="free" damping="0.01"/>
      <geom size="0.025 0.025 {box_half_height}" type="box" condim="3" name="object0" material="block_mat"
            mass="{box_mass}"/>
      <site name="object0" pos="0 0 0" size="0.02 0.02 0.02" rgba="1 0 0 1" type="sphere"/>
    </body>
    <light directional="true" ambient="0.2 0.2 0.2" diffuse="0.8 0.8 0.8" specular="0.3 0.3 0.3" castshadow="false"
           pos="0 0 4" dir="0 0 -1" name="light0"/>
  </worldbody>
  <actuator/>
</mujoco>
"""


class SafeFetchPushToppleEnv(SelfTruncating, MujocoFetchEnv, EzPickle):
    """Fetch pushes a tall box to a goal on the table; the constraint is not to topple it.

    Gymnasium-Robotics' ``FetchPush-v4`` with its 5 cm cube replaced by a 5 x 5 x 11 cm box of the same mass, as in the
    Push-Topple task used by the paper (Bharadhwaj et al. 2020; Hsu et al. 2022). Everything else is FetchPush's.

    - **Observation** (``Dict``, like FetchPush): ``observation`` (25: gripper position, box position, relative
      position, finger state, box Euler angles, box linear and angular velocity, gripper velocity, finger velocity),
      ``achieved_goal`` (3: box centre), ``desired_goal`` (3: goal at the box's resting height).
    - **Action** (``Box(-1, 1, (4,))``): gripper displacement ``dx, dy, dz`` (times 5 cm per step) and the finger
      command, ignored because the gripper is kept closed (pushing).
    - **Reward**: FetchPush's, ``-1`` per step until the box centre is within 5 cm of the goal, then ``0``
      (``reward_type="dense"``: minus the distance).
    - **Cost**: ``info["cost"] = 1.0`` on every step at whose end the box is tilted more than 45 degrees
      (``arccos(R_zz)``, the angle between the box's axis and the vertical; ``info["tilt"]`` in degrees), else
      ``0.0``. A toppled box lies at 90 degrees and stays violating. With :class:`~sb3_metasaclag.common.wrappers.
      HardConstraint` the episode ends at the first violation (the paper trains that way).
    - **Success**: ``info["is_success"]`` (box within 5 cm of the goal). **Episode**: 50 steps (25 Hz, 2 s).

    :param reward_type: ``"sparse"`` (FetchPush's default) or ``"dense"``.
    :param max_tilt_deg: Tilt above which a step violates the constraint.
    :param box_half_height: Half the height of the box (m).
    :param box_mass: Mass of the box (kg), FetchPush's 2 kg by default.
    :param max_episode_steps: Episode length; the environment truncates by itself (see :func:`check_episode_steps`).
    :param kwargs: Passed to Gymnasium-Robotics' ``MujocoFetchEnv`` (``render_mode``, ``width``, ``height``, ...).
    """

    def __init__(
        self,
        reward_type: str = "sparse",
        max_tilt_deg: float = 45.0,
        box_half_height: float = BOX_HALF_HEIGHT,
        box_mass: float = 2.0,
        max_episode_steps: int = 50,
        **kwargs: Any,
    ) -> None:
        require_robotics(_IMPORT_ERROR)
        if reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type must be 'sparse' or 'dense', got {reward_type!r}")
        if not 0.0 < max_tilt_deg < 180.0:
            raise ValueError(f"max_tilt_deg must be in (0, 180), got {max_tilt_deg}")
        if not 0.01 <= box_half_height <= 0.15:
            raise ValueError(f"box_half_height must be in [0.01, 0.15] m, got {box_half_height}")
        self.max_tilt = np.deg2rad(max_tilt_deg)
        self._init_truncation(max_episode_steps)
        initial_qpos = {
            "robot0:slide0": 0.405,
            "robot0:slide1": 0.48,
            "robot0:slide2": 0.0,
            "object0:joint": [1.25, 0.53, TABLE_TOP + box_half_height, 1.0, 0.0, 0.0, 0.0],
        }
        MujocoFetchEnv.__init__(
            self,
            model_path=write_model("fetch_push_topple", _model_xml(box_half_height, box_mass)),
            has_object=True,
            block_gripper=True,
            n_substeps=20,
            gripper_extra_height=0.0,
            target_in_the_air=False,
            target_offset=0.0,
            obj_range=0.15,
            target_range=0.15,
            distance_threshold=0.05,
            initial_qpos=initial_qpos,
            reward_type=reward_type,
            **kwargs,
        )
        EzPickle.__init__(self, reward_type, max_tilt_deg, box_half_height, box_mass, max_episode_steps, **kwargs)

    def box_tilt(self) -> float:
        """Current tilt of the box in radians (0 upright, pi/2 on its side)."""
        return tilt_angle(self._utils.get_site_xmat(self.model, self.data, "object0"))

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)  # truncated at max_episode_steps
        tilt = self.box_tilt()
        info["tilt"] = float(np.rad2deg(tilt))
        info["cost"] = float(tilt > self.max_tilt)
        return obs, float(reward), terminated, truncated, info


class ScriptedPusher:
    """A hand-written pushing controller: rise, move behind the box (opposite the goal), descend, push to the goal.

    :param speed: Pushing speed as a fraction of the largest displacement per step (1 = 5 cm per step, FetchPush's
        limit); the approach moves at 0.6.
    :param height: Height of the gripper above the table while pushing (m). Low pushes (2 cm) move the box upright;
        pushing near the top of the 11 cm box topples it.
    """

    def __init__(self, speed: float = 0.3, height: float = 0.02) -> None:
        self.speed = speed
        self.height = height
        self.approach_speed = 0.6
        self.phase = 0

    def reset(self) -> None:
        self.phase = 0

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        grip, box, goal = obs["observation"][:3], obs["achieved_goal"], obs["desired_goal"]
        direction = goal[:2] - box[:2]
        direction = direction / max(float(np.linalg.norm(direction)), 1e-6)
        behind = box[:2] - direction * 0.07
        high, low = TABLE_TOP + 0.14, TABLE_TOP + self.height
        waypoints = [
            np.array([*grip[:2], high]),  # 0: rise above the box
            np.array([*behind, high]),  # 1: move behind it
            np.array([*behind, low]),  # 2: descend
        ]
        if self.phase < len(waypoints) and np.linalg.norm(waypoints[self.phase] - grip) < 0.01:
            self.phase += 1
        if self.phase < len(waypoints):
            target, speed = waypoints[self.phase], self.approach_speed
        else:  # 3: push through the box towards the goal
            target, speed = np.array([*(box[:2] + direction * 0.05), low]), self.speed
        step = (target - grip) / 0.05
        largest = float(np.abs(step).max())
        if largest > speed:
            step *= speed / largest
        return np.append(step, 0.0).astype(np.float32)
