"""``SafeDrawerClose-v0``: a mobile Franka arm closes a drawer while its base stays out of a red floor region.

A MuJoCo substitute for the paper's Isaac Gym ``FreightFrankaCloseDrawer`` task (Appendix C, "Obstacle avoidance"),
which cannot be installed here (Isaac Gym needs an NVIDIA GPU and is not on the package registries).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_metasaclag.envs.helpers import robotics_assets_dir, validated_action, write_model

#: The red floor region (world x range, y range) the base must stay out of, as in the Isaac Gym task.
HAZARD_X = (-0.2, 0.3)
HAZARD_Y = (-0.5, 0.5)
#: x of the cabinet's front face (where the closed drawer's front is).
CABINET_FRONT = 1.3
#: Height of the drawer's centre (m): the height of the arm's end effector in its pushing pose.
DRAWER_Z = 0.62
BASE_START = (-0.9, 0.0, 0.0)
#: Arm pose the episode starts in: the hand points forward, 0.55 m in front of the base's centre and 0.66 m high.
ARM_HOME = (0.0, -0.4, 0.0, -3.0, 0.0, 2.1, 0.785)
#: Largest change per step: base 2.5 cm in x and y and 0.05 rad in yaw; arm joints 0.05 rad.
BASE_STEP = np.array([0.025, 0.025, 0.05])
ARM_STEP = 0.05


def _model_xml() -> str:
    franka = robotics_assets_dir() / "kitchen_franka" / "franka_assets"
    hazard_centre = ((HAZARD_X[0] + HAZARD_X[1]) / 2, (HAZARD_Y[0] + HAZARD_Y[1]) / 2)
    hazard_half = ((HAZARD_X[1] - HAZARD_X[0]) / 2, (HAZARD_Y[1] - HAZARD_Y[0]) / 2)
    return f"""<?xml version="1.0" encoding="utf-8"?>
<mujoco model="safe_drawer_close">
  <include file="{franka / 'assets.xml'}"/>
  <compiler angle="radian" meshdir="{franka / 'meshes'}"/>
  <option timestep="0.002" integrator="implicitfast"/>
  <asset>
    <texture name="floor_tex" type="2d" builtin="checker" rgb1=".35 .37 .4" rgb2=".3 .32 .35" width="256" height="256"/>
    <material name="floor_mat" texture="floor_tex" texrepeat="4 4"/>
  </asset>
  <worldbody>
    <light directional="true" diffuse=".8 .8 .8" pos="0 0 4" dir="0 0 -1"/>
    <geom name="floor" type="plane" size="4 4 0.1" material="floor_mat" contype="1" conaffinity="1"/>
    <geom name="hazard" type="box" pos="{hazard_centre[0]} {hazard_centre[1]} 0.001"
          size="{hazard_half[0]} {hazard_half[1]} 0.001" rgba="0.9 0.1 0.1 0.6" contype="0" conaffinity="0"/>
    <body name="base" pos="0 0 0.16">
      <joint name="base_x" type="slide" axis="1 0 0" damping="1200"/>
      <joint name="base_y" type="slide" axis="0 1 0" damping="1200"/>
      <joint name="base_yaw" type="hinge" axis="0 0 1" damping="250"/>
      <geom name="base" type="box" size="0.3 0.25 0.15" rgba="0.2 0.2 0.25 1" mass="60" contype="1" conaffinity="0"/>
      <site name="base_centre" pos="0 0 -0.15" size="0.02"/>
      <body name="arm_mount" pos="0.1 0 0.15">
        <include file="{franka / 'chain.xml'}"/>
      </body>
    </body>
    <body name="cabinet" pos="{CABINET_FRONT + 0.25} 0 {DRAWER_Z}">
      <geom name="cabinet_top" type="box" pos="0 0 0.17" size="0.25 0.35 0.03" rgba="0.55 0.4 0.3 1"/>
      <geom name="cabinet_bottom" type="box" pos="0 0 -0.17" size="0.25 0.35 0.03" rgba="0.55 0.4 0.3 1"/>
      <geom name="cabinet_back" type="box" pos="0.22 0 0" size="0.03 0.35 0.2" rgba="0.55 0.4 0.3 1"/>
      <geom name="cabinet_left" type="box" pos="0 0.32 0" size="0.25 0.03 0.2" rgba="0.55 0.4 0.3 1"/>
      <geom name="cabinet_right" type="box" pos="0 -0.32 0" size="0.25 0.03 0.2" rgba="0.55 0.4 0.3 1"/>
      <geom name="cabinet_leg" type="box" pos="0 0 {-(DRAWER_Z + 0.2) / 2}" size="0.2 0.3 {(DRAWER_Z - 0.2) / 2}"
            rgba="0.45 0.32 0.25 1"/>
      <body name="drawer" pos="-0.22 0 0">
        <joint name="drawer" type="slide" axis="-1 0 0" range="0 0.4" damping="20" limited="true"/>
        <geom name="drawer_front" type="box" pos="-0.02 0 0" size="0.02 0.28 0.13" rgba="0.75 0.6 0.45 1" mass="1"/>
        <geom name="drawer_bottom" type="box" pos="0.18 0 -0.11" size="0.2 0.26 0.01" rgba="0.7 0.55 0.4 1" mass="1"/>
        <site name="handle" pos="-0.06 0 0.0" size="0.015"/>
        <geom name="handle" type="capsule" fromto="-0.06 -0.08 0 -0.06 0.08 0" size="0.012" rgba="0.3 0.3 0.3 1"
              mass="0.1"/>
      </body>
    </body>
  </worldbody>
  <include file="{franka / 'actuator.xml'}"/>
  <actuator>
    <position name="base_x" joint="base_x" kp="4000" forcerange="-3000 3000"/>
    <position name="base_y" joint="base_y" kp="4000" forcerange="-3000 3000"/>
    <position name="base_yaw" joint="base_yaw" kp="2000" forcerange="-600 600"/>
  </actuator>
</mujoco>
"""


class SafeDrawerCloseEnv(gym.Env):
    """A mobile Franka arm drives to a cabinet and closes its drawer; its base must not enter a red floor region.

    **Substitute for Isaac Gym's FreightFrankaCloseDrawer**, the task the paper used, which needs Isaac Gym (NVIDIA GPU,
    not installable from the package registries). This MuJoCo scene keeps what defines the task - a Franka arm on a
    base that moves in x, y and yaw, a drawer on a slide joint that starts 0.2 m open, success when it is within 0.01 m of
    closed, and a cost when the base's centre is inside the red rectangle x in [-0.2, 0.3], y in [-0.5, 0.5] (the Isaac
    Gym task's region) - and differs in the rest: the Franka model is the one Gymnasium-Robotics ships (Franka Kitchen
    assets), the base is a box with position-controlled planar joints rather than a wheeled Freight base, the cabinet is
    a box cabinet, the simulation is MuJoCo at 20 Hz rather than PhysX, and the reward below is ours. The region lies
    between the start and the cabinet, so the straight path costs and a safe path goes around it.

    - **Observation** (``Box(32,)``): base ``x, y, cos(yaw), sin(yaw)``; 7 arm joint angles; base velocities (3); 7 arm
      joint velocities; end-effector position (3); handle position (3); end effector to handle (3); drawer opening (m)
      and its velocity.
    - **Action** (``Box(-1, 1, (10,))``): changes of the position targets of the base (``dx, dy`` in the world frame,
      2.5 cm per step at 1; ``d yaw``, 0.05 rad) and of the 7 arm joints (0.05 rad); the gripper stays closed.
    - **Reward**: ``-||end effector - handle|| - 10 * opening`` per step, and ``+10`` on the step the drawer closes.
    - **Cost**: ``info["cost"] = 1.0`` when the base's centre is inside the red region at the end of the step, else
      ``0.0`` (``info["in_hazard"]``).
    - **Success**: drawer opening below 0.01 m (``info["is_success"]``); the episode then terminates.
      **Episode**: 300 steps (15 s; 25 physics steps of 2 ms per step). Starts with the base at (-0.9, 0) facing the
      cabinet, a small random offset of the base (+-5 cm, +-0.1 rad) and of the arm joints (+-0.05 rad).

    Rendering is not implemented: MuJoCo needs an OpenGL context (EGL or OSMesa) that the machines this was built on
    do not have, so it could not be tested.

    :param render_mode: Only ``None``.
    """

    metadata = {"render_modes": [], "render_fps": 20}

    def __init__(self, render_mode: str | None = None) -> None:
        import mujoco

        if render_mode is not None:
            raise ValueError(f"SafeDrawerClose-v0 does not render (no OpenGL here), got render_mode={render_mode!r}")
        self._mujoco = mujoco
        self.model = mujoco.MjModel.from_xml_path(write_model("drawer_close", _model_xml()))
        # Gravity compensation of the arm (as Franka's own controller does), so that position control holds its pose.
        arm_bodies = [i for i in range(self.model.nbody) if self.model.body(i).name.startswith("panda0_")]
        self.model.body_gravcomp[arm_bodies] = 1.0
        self.data = mujoco.MjData(self.model)
        self.n_substeps = 25
        self.dt = self.model.opt.timestep * self.n_substeps
        self.render_mode = render_mode

        def joint_address(name: str) -> tuple[int, int]:
            joint = self.model.joint(name)
            return int(joint.qposadr[0]), int(joint.dofadr[0])

        base = [joint_address(name) for name in ("base_x", "base_y", "base_yaw")]
        arm = [joint_address(f"robot:panda0_joint{i}") for i in range(1, 8)]
        self._base_qpos = np.array([q for q, _ in base])
        self._base_qvel = np.array([v for _, v in base])
        self._arm_qpos = np.array([q for q, _ in arm])
        self._arm_qvel = np.array([v for _, v in arm])
        self._drawer_qpos, self._drawer_qvel = joint_address("drawer")
        actuator = {self.model.actuator(i).name: i for i in range(self.model.nu)}
        self._base_ctrl = np.array([actuator[name] for name in ("base_x", "base_y", "base_yaw")])
        self._arm_ctrl = np.array([actuator[f"panda0_joint{i}"] for i in range(1, 8)])
        self._finger_ctrl = np.array([actuator["r_gripper_finger_joint"], actuator["l_gripper_finger_joint"]])
        self._arm_low = self.model.actuator_ctrlrange[self._arm_ctrl, 0]
        self._arm_high = self.model.actuator_ctrlrange[self._arm_ctrl, 1]
        self._ee_site = self.model.site("end_effector").id
        self._handle_site = self.model.site("handle").id

        self.action_space = spaces.Box(-1.0, 1.0, shape=(10,), dtype=np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(32,), dtype=np.float64)
        self._target = np.zeros(10)

    # ------------------------------------------------------------------------------------------------------------------
    @property
    def base_pose(self) -> np.ndarray:
        """``(x, y, yaw)`` of the base."""
        return self.data.qpos[self._base_qpos].copy()

    @property
    def drawer_opening(self) -> float:
        """How far the drawer is open (m); 0 is closed."""
        return float(self.data.qpos[self._drawer_qpos])

    def end_effector(self) -> np.ndarray:
        return self.data.site_xpos[self._ee_site].copy()

    def handle(self) -> np.ndarray:
        return self.data.site_xpos[self._handle_site].copy()

    @staticmethod
    def in_hazard(x: float, y: float) -> bool:
        """Whether a base centre at ``(x, y)`` is inside the red region."""
        return bool(HAZARD_X[0] <= x <= HAZARD_X[1] and HAZARD_Y[0] <= y <= HAZARD_Y[1])

    def _get_obs(self) -> np.ndarray:
        x, y, yaw = self.base_pose
        ee, handle = self.end_effector(), self.handle()
        return np.concatenate(
            [
                [x, y, np.cos(yaw), np.sin(yaw)],
                self.data.qpos[self._arm_qpos],
                self.data.qvel[self._base_qvel],
                self.data.qvel[self._arm_qvel],
                ee,
                handle,
                handle - ee,
                [self.drawer_opening, self.data.qvel[self._drawer_qvel]],
            ]
        )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        mujoco = self._mujoco
        mujoco.mj_resetData(self.model, self.data)
        base = np.array(BASE_START) + self.np_random.uniform([-0.05, -0.05, -0.1], [0.05, 0.05, 0.1])
        arm = np.clip(np.array(ARM_HOME) + self.np_random.uniform(-0.05, 0.05, size=7), self._arm_low, self._arm_high)
        self.data.qpos[self._base_qpos] = base
        self.data.qpos[self._arm_qpos] = arm
        self.data.qpos[self._drawer_qpos] = 0.2
        self._target = np.concatenate([base, arm])
        self._apply_targets()
        mujoco.mj_forward(self.model, self.data)
        return self._get_obs(), {"cost": 0.0, "is_success": False}

    def _apply_targets(self) -> None:
        self.data.ctrl[self._base_ctrl] = self._target[:3]
        self.data.ctrl[self._arm_ctrl] = self._target[3:]
        self.data.ctrl[self._finger_ctrl] = 0.0

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = validated_action(action, 10, "SafeDrawerClose-v0")
        # Targets accumulate the changes, kept within a band around the current state so that they cannot run away from
        # a blocked base or arm (position control then holds the pose when the action is zero).
        base, arm = self.base_pose, self.data.qpos[self._arm_qpos]
        self._target[:3] = np.clip(self._target[:3] + action[:3] * BASE_STEP, base - 4 * BASE_STEP, base + 4 * BASE_STEP)
        arm_target = np.clip(self._target[3:] + action[3:] * ARM_STEP, arm - 4 * ARM_STEP, arm + 4 * ARM_STEP)
        self._target[3:] = np.clip(arm_target, self._arm_low, self._arm_high)
        self._apply_targets()
        self._mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)

        x, y, _ = self.base_pose
        in_hazard = self.in_hazard(x, y)
        opening = self.drawer_opening
        success = opening < 0.01
        reward = -float(np.linalg.norm(self.end_effector() - self.handle())) - 10.0 * opening + (10.0 if success else 0.0)
        info = {"cost": float(in_hazard), "in_hazard": in_hazard, "is_success": bool(success), "drawer_opening": opening}
        return self._get_obs(), reward, bool(success), False, info


class ScriptedDrawerCloser:
    """A hand-written controller: keeps the arm in its pose and drives the base to the drawer, pushing it closed.

    :param safe: Go around the red region (via y = 0.8) when ``True``; drive straight through it when ``False``.
    """

    SAFE_PATH = ((-0.9, 0.8), (0.45, 0.8), (0.45, 0.0), (0.8, 0.0))
    STRAIGHT_PATH = ((0.8, 0.0),)

    def __init__(self, safe: bool = True) -> None:
        self.path = self.SAFE_PATH if safe else self.STRAIGHT_PATH
        self.index = 0

    def reset(self) -> None:
        self.index = 0

    def __call__(self, env: SafeDrawerCloseEnv) -> np.ndarray:
        x, y, yaw = env.base_pose
        if self.index < len(self.path) - 1 and np.hypot(self.path[self.index][0] - x, self.path[self.index][1] - y) < 0.03:
            self.index += 1
        target = np.array(self.path[self.index])
        action = np.zeros(10, dtype=np.float32)
        action[:2] = np.clip((target - (x, y)) / BASE_STEP[:2], -0.8, 0.8)
        action[2] = np.clip(-yaw / BASE_STEP[2], -1.0, 1.0)
        return action
