"""Helpers shared by the robotics tasks: generated model files, Gymnasium-Robotics assets, action checks."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def robotics_assets_dir() -> Path:
    """Directory of the MuJoCo assets that gymnasium-robotics ships (meshes, textures, robot descriptions)."""
    from sb3_metasaclag.envs.safety_gym_compat import without_adroit_notice

    try:
        with without_adroit_notice():
            import gymnasium_robotics
    except ImportError as error:  # pragma: no cover - depends on the installation
        import gymnasium as gym

        raise gym.error.DependencyNotInstalled(
            "This task uses the robot models of gymnasium-robotics: pip install 'sb3-metasaclag[robotics]'"
        ) from error
    return Path(gymnasium_robotics.__file__).resolve().parent / "envs" / "assets"


_MODEL_DIRECTORY: Path | None = None


def model_directory() -> Path:
    """This process's private directory for generated model files (created on first use with mode 0700 by
    ``tempfile.mkdtemp``, removed at exit). Nothing in it comes from another process or user."""
    global _MODEL_DIRECTORY
    if _MODEL_DIRECTORY is None or not _MODEL_DIRECTORY.is_dir():
        _MODEL_DIRECTORY = Path(tempfile.mkdtemp(prefix="sb3_metasaclag_models_"))
        atexit.register(shutil.rmtree, _MODEL_DIRECTORY, True)
    return _MODEL_DIRECTORY


def write_model(name: str, xml: str) -> str:
    """Write a generated model file (MJCF or URDF) into this process's private directory; return its absolute path.

    MuJoCo, Gymnasium-Robotics and PyBullet load their models from file paths; the generated models refer to their
    assets by absolute paths. A file is written once per content and process (its name carries a hash of the content),
    never taken from a shared location that another user could have prepared.
    """
    digest = hashlib.sha1(xml.encode()).hexdigest()[:16]
    path = model_directory() / f"{name}_{digest}.xml"
    if not path.is_file():
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".xml")
        with os.fdopen(handle, "w") as file:
            file.write(xml)
        os.replace(temporary, path)
    return str(path)


def tilt_angle(rotation_matrix: np.ndarray) -> float:
    """Angle in radians between a body's local z axis and the world's z axis (``arccos(R_zz)``)."""
    return float(np.arccos(np.clip(np.asarray(rotation_matrix).reshape(3, 3)[2, 2], -1.0, 1.0)))


def check_episode_steps(max_episode_steps: int) -> int:
    """Validate the episode length of a goal-conditioned task.

    The goal-conditioned tasks (Dict observations with ``compute_reward``) count their steps and truncate by themselves,
    and are registered without gymnasium's ``TimeLimit``/``OrderEnforcing``/checker wrappers: gymnasium 1.x wrappers do
    not forward ``compute_reward``, which SB3's ``check_env`` and ``HerReplayBuffer`` call on the environment.
    """
    if int(max_episode_steps) != max_episode_steps or max_episode_steps < 1:
        raise ValueError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}")
    return int(max_episode_steps)


class SelfTruncating:
    """Mixin for the goal-conditioned tasks: count the steps of an episode and truncate after ``max_episode_steps``
    (see :func:`check_episode_steps` for why they truncate by themselves). Put it before the environment class:
    ``class Task(SelfTruncating, RoboticsEnv)``, and call :meth:`_init_truncation` in ``__init__``."""

    max_episode_steps: int
    _elapsed_steps: int

    def _init_truncation(self, max_episode_steps: int) -> None:
        self.max_episode_steps = check_episode_steps(max_episode_steps)
        self._elapsed_steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self._elapsed_steps = 0
        return super().reset(seed=seed, options=options)  # type: ignore[misc]

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)  # type: ignore[misc]
        self._elapsed_steps += 1
        return obs, reward, terminated, truncated or self._elapsed_steps >= self.max_episode_steps, info


def validated_action(action: np.ndarray, size: int, env_id: str) -> np.ndarray:
    """``action`` as a float64 array of shape ``(size,)`` clipped to [-1, 1]; a clear error for a wrong shape or NaN/inf."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (size,):
        raise ValueError(f"{env_id} expects an action of shape ({size},), got {action.shape}")
    if not np.all(np.isfinite(action)):
        raise ValueError(f"{env_id} got a non-finite action: {action}")
    return np.clip(action, -1.0, 1.0)


def require_robotics(import_error: ImportError | None) -> None:
    """Raise a clear error when gymnasium-robotics or MuJoCo could not be imported (``import_error`` is that error)."""
    if import_error is not None:
        import gymnasium as gym

        raise gym.error.DependencyNotInstalled(
            f"This task needs gymnasium-robotics and mujoco<=3.11: pip install 'sb3-metasaclag[robotics]' ({import_error})"
        )
