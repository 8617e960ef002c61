"""``SafePourCoffee-v0``: a PyBullet digital twin of the paper's Pour Coffee task (Sec. 5.3, Appendix D, Table 2)."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_metasaclag.envs.helpers import validated_action, write_model
from sb3_metasaclag.envs.kinova_gen3 import HOME_DEG, JOINTS, gen3_urdf

GRAVITY = 9.81
#: The mug: a cylinder of this radius and height (m), held by the gripper with its axis vertical at home.
CUP_RADIUS, CUP_HEIGHT = 0.04, 0.10
#: The mug's centre in the tool-flange frame (0.16 m in front of the flange, past the gripper's fingers).
CUP_IN_FLANGE = (0.0, 0.0, 0.16)
#: The target cup standing on the table (radius, height) and its nominal position.
TARGET_RADIUS, TARGET_HEIGHT = 0.05, 0.10
TARGET_XY = (0.60, 0.25)
#: The goal: the mug's centre above the target cup, offset so that its rim is over the target when it is tilted by
#: ``GOAL_PHI`` about the x axis (a positive roll moves the rim towards -y).
GOAL_OFFSET = (0.0, 0.05, 0.17)
GOAL_PHI = math.radians(100.0)
#: Eq. 17 of the paper.
R1, R2, R3, D_THRESH = -2.0, -0.05, -1.0, 0.05
#: Table 2: (distance, acceleration, spillage penalty) reward terms; (collision, spillage) violations.
SETTINGS: dict[int, tuple[tuple[bool, bool, bool], tuple[bool, bool]]] = {
    1: ((True, False, False), (True, True)),
    2: ((True, True, False), (True, False)),
    3: ((True, True, False), (True, True)),
    4: ((True, True, True), (True, True)),
}
SIM_HZ, SUBSTEPS = 240, 10
#: Largest end-effector speed (m/s) and pour rate (rad/s) an action of 1 asks for.
MAX_SPEED, MAX_PHI_RATE = 0.25, 1.0
PHI_RANGE = (-0.5, 2.4)


def critical_angle(fill_height: float, cup_height: float = CUP_HEIGHT, cup_radius: float = CUP_RADIUS) -> float:
    """Tilt (rad) of a cylindrical cup at which a liquid at rest, filled to ``fill_height``, reaches the rim.

    The free surface stays perpendicular to the (effective) gravity and keeps the liquid's volume; it touches the rim
    when ``tan(angle) = (cup_height - fill_height) / cup_radius`` (while the surface still covers the bottom, which holds
    for fills above half the cup; below, the same formula slightly overstates the angle). A cup 10 cm tall, 4 cm in
    radius spills at 45 degrees when filled to 6 cm and at 60 degrees when filled to 3 cm, like real coffee.
    """
    return math.atan2(max(cup_height - fill_height, 0.0), cup_radius)


def fill_at_angle(angle: float, cup_height: float = CUP_HEIGHT, cup_radius: float = CUP_RADIUS) -> float:
    """The largest fill height (m) a cup tilted by ``angle`` (rad) can keep: the inverse of :func:`critical_angle`."""
    if angle >= math.pi / 2:
        return 0.0
    return max(cup_height - cup_radius * math.tan(angle), 0.0)


def _tool_urdf() -> str:
    cup_rpy = (-math.pi, -math.pi / 2, math.pi / 2)  # the mug upright (its frame = the world's) in the home pose
    cup_xyz = CUP_IN_FLANGE
    return f"""  <link name="gripper_link">
    <inertial><origin xyz="0 0 0.06"/><mass value="0.925"/>
      <inertia ixx="1.5e-3" ixy="0" ixz="0" iyy="1.5e-3" iyz="0" izz="8e-4"/></inertial>
    <visual><origin xyz="0 0 0.06"/><geometry><box size="0.08 0.05 0.12"/></geometry>
      <material name="black"><color rgba="0.1 0.1 0.1 1"/></material></visual>
    <collision><origin xyz="0 0 0.06"/><geometry><box size="0.08 0.05 0.12"/></geometry></collision>
  </link>
  <joint name="gripper" type="fixed">
    <parent link="end_effector_link"/><child link="gripper_link"/><origin xyz="0 0 0" rpy="0 0 0"/>
  </joint>
  <link name="cup_link">
    <inertial><mass value="0.35"/><inertia ixx="4e-4" ixy="0" ixz="0" iyy="4e-4" iyz="0" izz="3e-4"/></inertial>
    <visual><geometry><cylinder radius="{CUP_RADIUS}" length="{CUP_HEIGHT}"/></geometry>
      <material name="white"><color rgba="0.95 0.95 0.95 1"/></material></visual>
    <collision><geometry><cylinder radius="{CUP_RADIUS}" length="{CUP_HEIGHT}"/></geometry></collision>
  </link>
  <joint name="cup" type="fixed">
    <parent link="gripper_link"/><child link="cup_link"/>
    <origin xyz="{cup_xyz[0]} {cup_xyz[1]} {cup_xyz[2]}" rpy="{cup_rpy[0]:.9f} {cup_rpy[1]:.9f} {cup_rpy[2]:.9f}"/>
  </joint>
"""


class SafePourCoffeeEnv(gym.Env):
    """A Kinova Gen3 arm carries a mug of coffee from its home pose to a target cup and pours it in (paper Sec. 5.3).

    A PyBullet digital twin of the paper's real-world task. The arm is :mod:`~sb3_metasaclag.envs.kinova_gen3`'s
    Gen3 (published kinematics, primitive shapes) on a table; the mug (radius 4 cm, height 10 cm) is fixed to its
    gripper; a target cup (radius 5 cm) stands on the table 0.25 m to the side, its position randomised by +-5 cm.

    - **Observation** (``Box(15,)``, the paper's state): mug position (3), mug ZYX Euler angles ``(psi, theta, phi)``
      (3), mug linear velocity (3), goal position (3), goal ZYX Euler angles (3). The mug is upright (all angles 0) in
      the home pose; ``phi`` is the pour rotation (about the world x axis).
    - **Action** (``Box(-1, 1, (4,))``): end-effector velocity ``(x_dot, y_dot, z_dot, phi_dot)``, at most 0.25 m/s
      and 1 rad/s. A damped-least-squares controller on the mug's Jacobian turns it into joint velocities (tracked by
      PyBullet's velocity motors within the Gen3's velocity and torque limits), keeps the mug's yaw and pitch at 0, and
      pulls the arm towards its home posture in the Jacobian's null space. PyBullet runs at 240 Hz, 10 substeps per step.
    - **Reward** (Eq. 17): with ``d`` the distance from mug to goal, ``r1 d + r2 ||mug acceleration|| + r3 1[spill]``
      if ``d > 5 cm``, else ``-|phi - phi_goal| + 10``; ``r1 = -2, r2 = -0.05, r3 = -1``. ``setting`` (Table 2) selects
      which of the three terms are on.
    - **Cost**: ``info["cost"] = 1.0`` on a step with a counted violation, else 0.0. Violations: a **collision** - a
      contact with positive normal force, at any physics substep, between the robot (with gripper and mug) and the
      table or the target cup, or between two robot links that are not directly connected and do not touch in the
      home pose - and **spillage**: coffee that leaves the mug
      anywhere but into the target cup. ``setting`` selects which violations count; ``info["collision"]`` and
      ``info["spilled"]`` always report both.
    - **Coffee**: an analytic liquid model. The coffee's surface stays perpendicular to the effective gravity
      ``g - a`` (``a``: the mug's acceleration); coffee leaves the mug when the angle between the mug's axis and ``-(g -
      a)`` exceeds the critical angle set by the fill level (:func:`critical_angle`: 45 degrees at the default 6 cm),
      at most ``pour_rate`` litres per second, until the level is back below the rim. Coffee leaving while the mug's
      lowest rim point is over the target cup's opening is poured, not spilled. So tilting fast, or accelerating hard
      (a jerky move), spills. ``info["fill"]`` (m), ``info["poured"]`` and ``info["spilled_total"]`` (fractions of
      the initial volume) report it.
    - **Success**: at least half of the coffee poured into the target cup (``info["is_success"]``).
    - **Episode**: 200 steps (8.3 s at 24 Hz). At its end, and on every violating step (which ends it under hard
      constraints), ``info`` also holds ``success``, ``ee_acceleration_mean``,
      ``ee_acceleration_max``, ``ee_jerk_mean`` and ``ee_jerk_max`` (m/s^2, m/s^3, from finite differences of the mug
      velocity at 24 Hz): the quantities of the paper's Fig. 3.

    :param setting: Table 2 simulation setting, 1-4 (1: distance reward; collision and spillage violations - the
        setting of the real robot).
    :param fill_height: Coffee level in the mug (m), below its 10 cm height.
    :param pour_rate: Largest outflow (litres per second).
    :param max_episode_steps: Episode length (the environment truncates by itself).
    :param render_mode: ``None`` or ``"rgb_array"`` (PyBullet's software renderer, no OpenGL needed).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": SIM_HZ // SUBSTEPS}

    def __init__(
        self,
        setting: int = 1,
        fill_height: float = 0.06,
        pour_rate: float = 0.5,
        max_episode_steps: int = 200,
        render_mode: str | None = None,
    ) -> None:
        import pybullet

        if setting not in SETTINGS:
            raise ValueError(f"setting must be one of the Table 2 simulation settings {sorted(SETTINGS)}, got {setting!r}")
        if not 0.0 < fill_height < CUP_HEIGHT:
            raise ValueError(f"fill_height must be in (0, {CUP_HEIGHT}) m, got {fill_height}")
        if not pour_rate > 0:
            raise ValueError(f"pour_rate must be positive (litres per second), got {pour_rate}")
        if int(max_episode_steps) != max_episode_steps or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.setting = setting
        (self.use_distance, self.use_acceleration, self.use_spill_penalty), (self.count_collision, self.count_spill) = (
            SETTINGS[setting]
        )
        self.initial_fill = float(fill_height)
        self.pour_rate = float(pour_rate) * 1e-3  # m^3/s
        self.max_episode_steps = int(max_episode_steps)
        self.render_mode = render_mode
        self.dt = SUBSTEPS / SIM_HZ

        self._p = pybullet
        self._client = pybullet.connect(pybullet.DIRECT)
        p, client = self._p, self._client
        p.setGravity(0, 0, -GRAVITY, physicsClientId=client)
        p.setTimeStep(1.0 / SIM_HZ, physicsClientId=client)
        # Self-collision between all links but directly connected ones (excluding all ancestors would exclude every
        # pair of a serial arm).
        flags = p.URDF_USE_SELF_COLLISION | p.URDF_USE_SELF_COLLISION_EXCLUDE_PARENT
        self.robot = p.loadURDF(
            write_model("kinova_gen3_mug", gen3_urdf(_tool_urdf())),
            useFixedBase=True,
            flags=flags,
            physicsClientId=client,
        )
        table_shape = p.createCollisionShape(p.GEOM_BOX, halfExtents=[0.6, 0.7, 0.02], physicsClientId=client)
        table_visual = p.createVisualShape(
            p.GEOM_BOX, halfExtents=[0.6, 0.7, 0.02], rgbaColor=[0.6, 0.45, 0.3, 1], physicsClientId=client
        )
        self.table = p.createMultiBody(0, table_shape, table_visual, [0.35, 0.0, -0.02], physicsClientId=client)
        target_shape = p.createCollisionShape(
            p.GEOM_CYLINDER, radius=TARGET_RADIUS, height=TARGET_HEIGHT, physicsClientId=client
        )
        target_visual = p.createVisualShape(
            p.GEOM_CYLINDER, radius=TARGET_RADIUS, length=TARGET_HEIGHT, rgbaColor=[0.2, 0.4, 0.8, 1], physicsClientId=client
        )
        self.target = p.createMultiBody(
            0, target_shape, target_visual, [*TARGET_XY, TARGET_HEIGHT / 2], physicsClientId=client
        )
        self.n_arm_joints = len(JOINTS)
        self.cup_link = self.n_arm_joints + 2  # joints 0-6 arm, 7 end effector, 8 gripper, 9 cup
        self._home = np.deg2rad(HOME_DEG)
        self._lower = np.array([-np.inf if j[3] is None else j[3] for j in JOINTS])
        self._upper = np.array([np.inf if j[4] is None else j[4] for j in JOINTS])
        self._max_velocity = np.array([j[6] for j in JOINTS])
        self._max_force = np.array([j[5] for j in JOINTS])
        for joint in range(p.getNumJoints(self.robot, physicsClientId=client)):
            p.changeDynamics(self.robot, joint, linearDamping=0.0, angularDamping=0.0, physicsClientId=client)

        # Link pairs that touch by construction (in the home pose, e.g. a wrist and the gripper block) do not collide.
        self._set_arm(self._home)
        p.performCollisionDetection(physicsClientId=client)
        self._ignored_pairs = {
            tuple(sorted((c[3], c[4]))) for c in p.getContactPoints(self.robot, self.robot, physicsClientId=client)
        }
        for link_a, link_b in self._ignored_pairs:
            p.setCollisionFilterPair(self.robot, self.robot, link_a, link_b, 0, physicsClientId=client)

        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(15,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self._goal = np.zeros(3)
        self._goal_euler = np.array([0.0, 0.0, GOAL_PHI])
        self._target_xy = np.array(TARGET_XY)

    # ------------------------------------------------------------------------------------------------------------------
    def _set_arm(self, q: np.ndarray) -> None:
        for joint, angle in enumerate(q):
            self._p.resetJointState(self.robot, joint, float(angle), 0.0, physicsClientId=self._client)

    def _arm_state(self) -> tuple[np.ndarray, np.ndarray]:
        states = self._p.getJointStates(self.robot, range(self.n_arm_joints), physicsClientId=self._client)
        return np.array([s[0] for s in states]), np.array([s[1] for s in states])

    def _cup_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        state = self._p.getLinkState(
            self.robot, self.cup_link, computeLinkVelocity=1, computeForwardKinematics=1, physicsClientId=self._client
        )
        position, orientation, velocity = np.array(state[4]), state[5], np.array(state[6])
        rotation = np.array(self._p.getMatrixFromQuaternion(orientation)).reshape(3, 3)
        return position, rotation, velocity

    @staticmethod
    def zyx_euler(rotation: np.ndarray) -> np.ndarray:
        """Tait-Bryan ZYX intrinsic angles ``(psi, theta, phi)`` (yaw, pitch, roll) of a rotation matrix."""
        psi = math.atan2(rotation[1, 0], rotation[0, 0])
        theta = -math.asin(float(np.clip(rotation[2, 0], -1.0, 1.0)))
        phi = math.atan2(rotation[2, 1], rotation[2, 2])
        return np.array([psi, theta, phi])

    def _observation(self) -> np.ndarray:
        position, rotation, velocity = self._cup_state()
        return np.concatenate([position, self.zyx_euler(rotation), velocity, self._goal, self._goal_euler]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        p, client = self._p, self._client
        self._target_xy = np.array(TARGET_XY) + self.np_random.uniform(-0.05, 0.05, size=2)
        p.resetBasePositionAndOrientation(
            self.target, [*self._target_xy, TARGET_HEIGHT / 2], [0, 0, 0, 1], physicsClientId=client
        )
        self._goal = np.array([*self._target_xy, TARGET_HEIGHT]) + np.array(GOAL_OFFSET)
        start = self._home + self.np_random.uniform(-0.03, 0.03, size=self.n_arm_joints)
        self._set_arm(start)
        self.fill = self.initial_fill
        self.poured = 0.0
        self.spilled_total = 0.0
        self._steps = 0
        self._previous_velocity = np.zeros(3)
        self._previous_acceleration = np.zeros(3)
        self._accelerations: list[float] = []
        self._jerks: list[float] = []
        self._success = False
        _, rotation, _ = self._cup_state()
        self._phi_target = float(self.zyx_euler(rotation)[2])
        return self._observation(), {"cost": 0.0, "is_success": False}

    # ------------------------------------------------------------------------------------------------------------------
    def _joint_velocities(self, action: np.ndarray) -> np.ndarray:
        """Damped least squares: the joint velocities that move the mug with the commanded twist."""
        p, client = self._p, self._client
        q, _ = self._arm_state()
        _, rotation, _ = self._cup_state()
        zeros = [0.0] * self.n_arm_joints
        linear, angular = p.calculateJacobian(
            self.robot, self.cup_link, [0.0, 0.0, 0.0], list(q), zeros, zeros, physicsClientId=client
        )
        jacobian = np.vstack([np.array(linear), np.array(angular)])
        self._phi_target = float(np.clip(self._phi_target + action[3] * MAX_PHI_RATE * self.dt, *PHI_RANGE))
        # Orientation error: the rotation vector (small-angle form) that turns the mug's frame into the desired one.
        relative = _rotation_x(self._phi_target) @ rotation.T
        error = 0.5 * np.array(
            [relative[2, 1] - relative[1, 2], relative[0, 2] - relative[2, 0], relative[1, 0] - relative[0, 1]]
        )
        twist = np.concatenate([action[:3] * MAX_SPEED, action[3] * MAX_PHI_RATE * np.array([1.0, 0.0, 0.0]) + 8.0 * error])
        # One solve gives both the damped least-squares velocities and the null-space projector.
        jjt = jacobian @ jacobian.T + 0.05**2 * np.eye(6)
        solved = np.linalg.solve(jjt, np.column_stack([twist, jacobian]))
        qdot = jacobian.T @ solved[:, 0]
        # Pull towards the home posture in the null space (keeps the elbow where it is).
        null = np.eye(self.n_arm_joints) - jacobian.T @ solved[:, 1:]
        qdot += null @ (0.5 * _wrap(self._home - q))
        scale = max(1.0, float(np.max(np.abs(qdot) / self._max_velocity)))
        return qdot / scale

    def _collision(self) -> bool:
        p, client = self._p, self._client
        for other in (self.table, self.target):
            if any(c[9] > 0.0 for c in p.getContactPoints(self.robot, other, physicsClientId=client)):
                return True
        for contact in p.getContactPoints(self.robot, self.robot, physicsClientId=client):
            if contact[9] > 0.0 and tuple(sorted((contact[3], contact[4]))) not in self._ignored_pairs:
                return True
        return False

    def _update_coffee(self, position: np.ndarray, rotation: np.ndarray, acceleration: np.ndarray) -> tuple[float, float]:
        """Advance the liquid model by one step; return the volume fractions (poured, spilled) during it."""
        if self.fill <= 0.0:
            return 0.0, 0.0
        effective_gravity = np.array([0.0, 0.0, -GRAVITY]) - acceleration
        down = effective_gravity / max(float(np.linalg.norm(effective_gravity)), 1e-9)
        axis = rotation[:, 2]
        cosine = -float(np.dot(axis, down))
        angle = math.acos(float(np.clip(cosine, -1.0, 1.0)))
        keep = fill_at_angle(angle)
        if self.fill <= keep:
            return 0.0, 0.0
        area = math.pi * CUP_RADIUS**2
        outflow = min(self.fill - keep, self.pour_rate * self.dt / area)
        self.fill -= outflow
        fraction = outflow / self.initial_fill
        # The coffee leaves at the lowest point of the rim (relative to the effective gravity).
        radial = down - np.dot(down, axis) * axis
        radial = radial / max(np.linalg.norm(radial), 1e-9)
        lip = position + axis * CUP_HEIGHT / 2 + radial * CUP_RADIUS
        over_target = np.linalg.norm(lip[:2] - self._target_xy) < TARGET_RADIUS * 0.9 and lip[2] > TARGET_HEIGHT
        return (fraction, 0.0) if over_target else (0.0, fraction)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = validated_action(action, 4, "SafePourCoffee-v0")
        p, client = self._p, self._client
        qdot = self._joint_velocities(action)
        p.setJointMotorControlArray(
            self.robot,
            list(range(self.n_arm_joints)),
            p.VELOCITY_CONTROL,
            targetVelocities=list(qdot),
            forces=list(self._max_force),
            physicsClientId=client,
        )
        collision = False
        for _ in range(SUBSTEPS):
            p.stepSimulation(physicsClientId=client)
            collision = collision or self._collision()  # checked at every substep: contacts can be brief
        self._steps += 1

        position, rotation, velocity = self._cup_state()
        acceleration = (velocity - self._previous_velocity) / self.dt
        jerk = (acceleration - self._previous_acceleration) / self.dt
        if self._steps > 1:  # the first difference starts from rest
            self._accelerations.append(float(np.linalg.norm(acceleration)))
        if self._steps > 2:
            self._jerks.append(float(np.linalg.norm(jerk)))
        self._previous_velocity, self._previous_acceleration = velocity, acceleration
        poured, spilled = self._update_coffee(position, rotation, acceleration)
        self.poured += poured
        self.spilled_total += spilled
        spill = spilled > 0.0

        distance = float(np.linalg.norm(position - self._goal))
        phi = float(self.zyx_euler(rotation)[2])
        if distance > D_THRESH:
            reward = (
                (R1 * distance if self.use_distance else 0.0)
                + (R2 * float(np.linalg.norm(acceleration)) if self.use_acceleration else 0.0)
                + (R3 * float(spill) if self.use_spill_penalty else 0.0)
            )
        else:
            reward = -abs(phi - self._goal_euler[2]) + 10.0
        self._success = self._success or self.poured >= 0.5
        violated = (collision and self.count_collision) or (spill and self.count_spill)
        truncated = self._steps >= self.max_episode_steps
        info: dict[str, Any] = {
            "cost": float(violated),
            "collision": collision,
            "spilled": spill,
            "fill": self.fill,
            "poured": self.poured,
            "spilled_total": self.spilled_total,
            "distance": distance,
            "is_success": self._success,
        }
        if truncated or violated:
            # Also on a violating step: under hard constraints (HardConstraint, the paper's training) it ends the
            # episode, which this env itself does not know.
            info.update(self.episode_metrics())
        return self._observation(), float(reward), False, truncated, info

    def episode_metrics(self) -> dict[str, float | bool]:
        """Success and the end-effector (mug) acceleration and jerk statistics of the episode so far (Fig. 3)."""
        accelerations = self._accelerations or [0.0]
        jerks = self._jerks or [0.0]
        return {
            "success": self._success,
            "ee_acceleration_mean": float(np.mean(accelerations)),
            "ee_acceleration_max": float(np.max(accelerations)),
            "ee_jerk_mean": float(np.mean(jerks)),
            "ee_jerk_max": float(np.max(jerks)),
        }

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        p, client = self._p, self._client
        view = p.computeViewMatrix([1.0, -0.55, 0.45], [0.5, 0.2, 0.2], [0, 0, 1], physicsClientId=client)
        projection = p.computeProjectionMatrixFOV(50, 4 / 3, 0.05, 5.0, physicsClientId=client)
        _, _, rgba, _, _ = p.getCameraImage(320, 240, view, projection, renderer=p.ER_TINY_RENDERER, physicsClientId=client)
        return np.asarray(rgba, dtype=np.uint8).reshape(240, 320, 4)[:, :, :3].copy()

    def close(self) -> None:
        if getattr(self, "_client", None) is not None:
            with contextlib.suppress(self._p.error):  # already disconnected
                self._p.disconnect(physicsClientId=self._client)
            self._client = None


def _rotation_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _wrap(angles: np.ndarray) -> np.ndarray:
    return (angles + np.pi) % (2 * np.pi) - np.pi


class ScriptedPour:
    """A hand-written controller: a smooth move to the goal (speed ramped up and down), then a slow tilt to pour.

    :param speed: Largest speed as a fraction of the action limit (0.25 m/s).
    :param tilt_rate: Pour rate as a fraction of the action limit (1 rad/s).
    """

    def __init__(self, speed: float = 0.6, tilt_rate: float = 0.3) -> None:
        self.speed = speed
        self.tilt_rate = tilt_rate
        self._previous = np.zeros(3)

    def reset(self) -> None:
        self._previous = np.zeros(3)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        position, phi, goal, phi_goal = obs[:3], obs[5], obs[9:12], obs[14]
        offset = goal - position
        distance = float(np.linalg.norm(offset))
        # Proportional approach with a speed limit, and a limited change per step (smooth acceleration).
        desired = offset / max(distance, 1e-9) * min(self.speed, 4.0 * distance)
        velocity = self._previous + np.clip(desired - self._previous, -0.08, 0.08)
        self._previous = velocity
        action = np.zeros(4, dtype=np.float32)
        action[:3] = velocity
        if distance < 0.02:
            action[3] = np.clip((phi_goal - phi) * 2.0, -self.tilt_rate, self.tilt_rate)
        return action
