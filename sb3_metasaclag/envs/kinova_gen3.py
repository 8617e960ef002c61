"""A simplified Kinova Gen3 7-DoF description (URDF with primitive shapes), generated from its published kinematics.

No Gen3 URDF is installable from the package registries. The joint origins, axes, limits, velocities, efforts and link
masses below are Kinova's published values (ros_kortex ``gen3`` description, BSD-3); the link shapes are cylinders
between consecutive joints, with inertias of solid cylinders of the published masses. Every joint turns about its
local z axis.
"""

from __future__ import annotations

import math

import numpy as np

PI = math.pi

#: (name, origin xyz in the parent link, origin rpy, lower limit or None if continuous, upper, effort Nm, velocity rad/s)
JOINTS: tuple[
    tuple[str, tuple[float, float, float], tuple[float, float, float], float | None, float | None, float, float], ...
] = (
    ("joint_1", (0.0, 0.0, 0.15643), (PI, 0.0, 0.0), None, None, 39.0, 1.3963),
    ("joint_2", (0.0, 0.005375, -0.12838), (PI / 2, 0.0, 0.0), -2.41, 2.41, 39.0, 1.3963),
    ("joint_3", (0.0, -0.21038, -0.006375), (-PI / 2, 0.0, 0.0), None, None, 39.0, 1.3963),
    ("joint_4", (0.0, 0.006375, -0.21038), (PI / 2, 0.0, 0.0), -2.66, 2.66, 39.0, 1.3963),
    ("joint_5", (0.0, -0.20843, -0.006375), (-PI / 2, 0.0, 0.0), None, None, 9.0, 1.2218),
    ("joint_6", (0.0, 0.00017505, -0.10593), (PI / 2, 0.0, 0.0), -2.23, 2.23, 9.0, 1.2218),
    ("joint_7", (0.0, -0.10593, -0.00017505), (-PI / 2, 0.0, 0.0), None, None, 9.0, 1.2218),
)
#: The fixed end-effector (tool flange) frame in the bracelet link.
END_EFFECTOR = ((0.0, 0.0, -0.061525), (PI, 0.0, 0.0))
#: Link names, base first; link ``i`` (1-based) is the child of ``joint_i``.
LINKS = (
    "base_link",
    "shoulder_link",
    "half_arm_1_link",
    "half_arm_2_link",
    "forearm_link",
    "spherical_wrist_1_link",
    "spherical_wrist_2_link",
    "bracelet_link",
)
MASSES = (1.697, 1.3773, 1.1636, 1.1636, 0.9302, 0.6781, 0.6781, 0.5006)
#: Kinova's home pose (degrees).
HOME_DEG = (0.0, 15.0, 180.0, -130.0, 0.0, 55.0, 90.0)


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """URDF's fixed-axis roll-pitch-yaw rotation: ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``."""
    cr, sr, cp, sp, cy, sy = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def _transform(xyz: tuple[float, float, float], rpy: tuple[float, float, float]) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = rpy_matrix(*rpy)
    matrix[:3, 3] = xyz
    return matrix


def forward_kinematics(q: np.ndarray) -> np.ndarray:
    """Pose (4x4) of the end-effector (tool flange) frame in the base frame for joint angles ``q`` (7, radians)."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (7,):
        raise ValueError(f"expected 7 joint angles, got shape {q.shape}")
    pose = np.eye(4)
    for (_, xyz, rpy, *_), angle in zip(JOINTS, q):
        rotation = np.eye(4)
        rotation[:3, :3] = rpy_matrix(0.0, 0.0, angle)
        pose = pose @ _transform(xyz, rpy) @ rotation
    return pose @ _transform(*END_EFFECTOR)


def _cylinder_along(vector: np.ndarray) -> tuple[str, float]:
    """Origin and length of a cylinder from the link origin to ``vector`` (mostly along one axis of the link frame)."""
    length = float(np.linalg.norm(vector))
    axis = int(np.argmax(np.abs(vector)))
    rpy = {0: (0.0, PI / 2, 0.0), 1: (PI / 2, 0.0, 0.0), 2: (0.0, 0.0, 0.0)}[axis]
    centre = vector / 2
    origin = f'<origin xyz="{centre[0]:.6f} {centre[1]:.6f} {centre[2]:.6f}" rpy="{rpy[0]:.6f} {rpy[1]:.6f} {rpy[2]:.6f}"/>'
    return origin, length


def _link(name: str, mass: float, vector: np.ndarray, radius: float, rgba: str) -> str:
    origin, length = _cylinder_along(vector)
    ixx = mass * (3 * radius**2 + length**2) / 12
    izz = mass * radius**2 / 2
    shape = f'<geometry><cylinder radius="{radius}" length="{length:.6f}"/></geometry>'
    return f"""  <link name="{name}">
    <inertial>{origin}<mass value="{mass}"/>
      <inertia ixx="{ixx:.6e}" ixy="0" ixz="0" iyy="{ixx:.6e}" iyz="0" izz="{izz:.6e}"/></inertial>
    <visual>{origin}{shape}<material name="grey"><color rgba="{rgba}"/></material></visual>
    <collision>{origin}{shape}</collision>
  </link>
"""


def gen3_urdf(extra_links: str = "") -> str:
    """The Gen3 URDF (with line breaks: PyBullet's reader fails on very long single-line URDFs).

    :param extra_links: URDF text inserted before ``</robot>``, e.g. a tool fixed to ``end_effector_link``.
    """
    parts = ['<?xml version="1.0"?>\n<robot name="kinova_gen3">\n']
    # Each link is a cylinder from its joint to the next joint (the base from the floor to joint 1).
    next_origins = [np.array(joint[1]) for joint in JOINTS] + [np.array(END_EFFECTOR[0])]
    for index, (name, mass) in enumerate(zip(LINKS, MASSES)):
        radius = 0.055 if index == 0 else (0.045 if index < 5 else 0.038)
        rgba = "0.25 0.25 0.28 1" if index % 2 == 0 else "0.8 0.8 0.82 1"
        parts.append(_link(name, mass, next_origins[index], radius, rgba))
    for index, (name, xyz, rpy, lower, upper, effort, velocity) in enumerate(JOINTS):
        kind = "continuous" if lower is None else "revolute"
        limit = f'<limit effort="{effort}" velocity="{velocity}"' + (
            "" if lower is None else f' lower="{lower}" upper="{upper}"'
        )
        parts.append(f"""  <joint name="{name}" type="{kind}">
    <parent link="{LINKS[index]}"/><child link="{LINKS[index + 1]}"/>
    <origin xyz="{xyz[0]} {xyz[1]} {xyz[2]}" rpy="{rpy[0]:.9f} {rpy[1]:.9f} {rpy[2]:.9f}"/>
    <axis xyz="0 0 1"/>{limit}/>
  </joint>
""")
    ee_xyz, ee_rpy = END_EFFECTOR
    parts.append(f"""  <link name="end_effector_link">
    <inertial><mass value="0.001"/><inertia ixx="1e-6" ixy="0" ixz="0" iyy="1e-6" iyz="0" izz="1e-6"/></inertial>
  </link>
  <joint name="end_effector" type="fixed">
    <parent link="bracelet_link"/><child link="end_effector_link"/>
    <origin xyz="{ee_xyz[0]} {ee_xyz[1]} {ee_xyz[2]}" rpy="{ee_rpy[0]:.9f} {ee_rpy[1]:.9f} {ee_rpy[2]:.9f}"/>
  </joint>
""")
    parts.append(extra_links)
    parts.append("</robot>\n")
    return "".join(parts)
