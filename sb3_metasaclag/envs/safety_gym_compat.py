"""Compatibility layer that lets Safety-Gymnasium 1.0.0 import on Python 3.11 with gymnasium 1.x.

Safety-Gymnasium 1.0.0 (its newest release) was written against gymnasium 0.28 and Python <= 3.10.
Importing it here fails in three ways (see docs/installation.md, "Safety-Gymnasium"):

1. its asset dataclasses use numpy colour arrays as field defaults, which Python 3.11 rejects
   (``ValueError: mutable default <class 'numpy.ndarray'> for field color``);
2. it imports modules that gymnasium 1.x removed (``gymnasium.wrappers.compatibility``,
   ``gymnasium.wrappers.time_limit``, ``.autoreset``, ``.normalize``, ``.env_checker``);
3. its ``make`` builds and reads gymnasium 0.28-style ``EnvSpec`` objects
   (``autoreset`` and ``apply_api_compatibility`` fields).

:func:`import_safety_gymnasium` mends each of them before (1, 2) and right after (3) the first import,
touching only what Safety-Gymnasium itself uses. It is idempotent, and does nothing when Safety-Gymnasium
is not installed (it then returns ``None``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy as np

from sb3_metasaclag.envs import safety_gym_reset

__all__ = ["import_safety_gymnasium", "is_patched"]

_PATCHED = False


class _HashableColor(np.ndarray):
    """A numpy array usable as a dataclass default (Python 3.11 requires a hashable default).

    The array is never mutated by Safety-Gymnasium; hashing by identity is enough for ``dataclasses``.
    """

    __hash__ = object.__hash__  # type: ignore[assignment]


def _alias_module(name: str, **attributes: Any) -> None:
    """Register ``name`` as a module exposing ``attributes`` unless it already exists."""
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    module = types.ModuleType(name, f"Alias installed by sb3_metasaclag for Safety-Gymnasium ({name} left gymnasium 1.0).")
    module.__dict__.update(attributes)
    sys.modules[name] = module
    parent_name, _, child = name.rpartition(".")
    setattr(sys.modules[parent_name], child, module)


class _EnvCompatibilityUnavailable:
    """Stand-in for gymnasium 0.28's ``EnvCompatibility`` (old step API), which gymnasium 1.x removed.

    No Safety-Gymnasium task uses the old step API; asking for it raises a clear error.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            "apply_api_compatibility=True needs gymnasium<1.0 (EnvCompatibility was removed in gymnasium 1.0); "
            "Safety-Gymnasium tasks use the current step API and do not need it."
        )


def _install_gymnasium_aliases() -> None:
    import gymnasium.utils.env_checker
    import gymnasium.wrappers
    from gymnasium.wrappers.utils import RunningMeanStd

    wrappers = gymnasium.wrappers
    _alias_module("gymnasium.wrappers.compatibility", EnvCompatibility=_EnvCompatibilityUnavailable)
    _alias_module("gymnasium.wrappers.time_limit", TimeLimit=wrappers.TimeLimit)
    _alias_module("gymnasium.wrappers.autoreset", AutoResetWrapper=wrappers.Autoreset)
    _alias_module(
        "gymnasium.wrappers.normalize",
        NormalizeObservation=wrappers.NormalizeObservation,
        NormalizeReward=wrappers.NormalizeReward,
        RunningMeanStd=RunningMeanStd,
    )
    _alias_module("gymnasium.wrappers.env_checker", PassiveEnvChecker=wrappers.PassiveEnvChecker)


def _preload_hashable_colors(package_dir: str) -> None:
    """Load ``safety_gymnasium.assets.color`` ahead of the package, with hashable colour arrays."""
    name = "safety_gymnasium.assets.color"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, f"{package_dir}/assets/color.py")
    if spec is None or spec.loader is None:  # pragma: no cover - a broken installation
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    colors = module.COLOR  # type: ignore[attr-defined]
    module.COLOR = {key: np.asarray(value).view(_HashableColor) for key, value in colors.items()}  # type: ignore[attr-defined]
    sys.modules[name] = module


class _LegacyEnvSpecMeta(type):
    """Makes ``LegacyEnvSpec(...)`` build a gymnasium 1.x ``EnvSpec`` from gymnasium 0.28 arguments."""

    def __instancecheck__(cls, instance: Any) -> bool:
        from gymnasium.envs.registration import EnvSpec

        return isinstance(instance, EnvSpec)

    def __call__(cls, *args: Any, autoreset: bool = False, apply_api_compatibility: bool = False, **kwargs: Any) -> Any:
        from gymnasium.envs.registration import EnvSpec

        spec = EnvSpec(*args, **kwargs)
        spec.autoreset = autoreset  # type: ignore[attr-defined]
        spec.apply_api_compatibility = apply_api_compatibility  # type: ignore[attr-defined]
        return spec


class _LegacyEnvSpec(metaclass=_LegacyEnvSpecMeta):
    """Name that Safety-Gymnasium's ``make`` uses for ``EnvSpec`` (see :class:`_LegacyEnvSpecMeta`)."""


def _patch_registration(safety_gymnasium: types.ModuleType) -> None:
    import gymnasium

    registration = importlib.import_module("safety_gymnasium.utils.registration")
    registration.EnvSpec = _LegacyEnvSpec  # type: ignore[attr-defined]
    # Specs registered by Safety-Gymnasium are read with 0.28's field names in its ``make``.
    for env_id in registration.safe_registry:
        spec = gymnasium.registry.get(env_id)
        if spec is not None:
            for field in ("autoreset", "apply_api_compatibility"):
                if not hasattr(spec, field):
                    setattr(spec, field, False)


def _forget_lazy_ids() -> None:
    import gymnasium

    for env_id in [env_id for env_id, spec in gymnasium.registry.items() if spec.entry_point == _LAZY_ENTRY_POINT]:
        del gymnasium.registry[env_id]


def is_patched() -> bool:
    """Whether :func:`import_safety_gymnasium` has already mended and imported Safety-Gymnasium."""
    return _PATCHED


@contextlib.contextmanager
def without_adroit_notice() -> Iterator[None]:
    """Import gymnasium-robotics within the block without the notice it prints to stderr on every import (about the
    reward functions of its Adroit hand tasks, which this package does not use). Only that notice is withheld: the
    entry is taken out of ``farama_notifications.notifications`` for the block and put back after it."""
    try:
        from farama_notifications import notifications
    except ImportError:
        yield
        return
    saved = notifications.pop("gymnasium_robotics", None)
    try:
        yield
    finally:
        if saved is not None:
            notifications["gymnasium_robotics"] = saved


#: Safety-Gymnasium 1.0.0's gymnasium ids (``Safety...Gymnasium-v*``) with their registration: registered by
#: :func:`register_safety_gymnasium_ids` without importing it (tests check the file against its own registration).
SPECS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "safety_gymnasium_specs.json")
_LAZY_ENTRY_POINT = "sb3_metasaclag.envs.safety_gym_compat:make_safety_gymnasium_env"


def register_safety_gymnasium_ids() -> None:
    """Register Safety-Gymnasium's gymnasium ids (when it is installed) without importing it: the first
    ``gymnasium.make`` of one of them imports it through :func:`import_safety_gymnasium`. Idempotent."""
    import gymnasium

    if _PATCHED or importlib.util.find_spec("safety_gymnasium") is None:
        return
    with open(SPECS_FILE) as file:
        specs = json.load(file)
    for spec in specs:
        if spec["id"] not in gymnasium.registry:
            gymnasium.register(
                id=spec["id"],
                entry_point=_LAZY_ENTRY_POINT,
                max_episode_steps=spec["max_episode_steps"],
                reward_threshold=spec["reward_threshold"],
                kwargs=spec["kwargs"],
            )


def make_safety_gymnasium_env(**kwargs: Any) -> Any:
    """Entry point of the ids :func:`register_safety_gymnasium_ids` registers: import Safety-Gymnasium (mended), then
    build the environment with its own entry point (gymnasium's ``make`` adds the same wrappers around it)."""
    from gymnasium.envs.registration import load_env_creator

    if import_safety_gymnasium() is None:
        raise ImportError("Safety-Gymnasium is not installed: pip install --no-deps safety-gymnasium==1.0.0")
    spec = __import__("gymnasium").registry[kwargs["env_id"]]
    return load_env_creator(spec.entry_point)(**kwargs)


def import_safety_gymnasium() -> types.ModuleType | None:
    """Import Safety-Gymnasium through the compatibility layer.

    Safe to call any number of times. Returns the ``safety_gymnasium`` module, or ``None`` when it is not installed.
    After it, ``gymnasium.make("SafetyCarCircle2Gymnasium-v0")`` and the other ``Safety*Gymnasium`` ids work.
    """
    global _PATCHED
    if _PATCHED:
        return sys.modules["safety_gymnasium"]
    spec = importlib.util.find_spec("safety_gymnasium")
    if spec is None or not spec.submodule_search_locations:
        return None
    _forget_lazy_ids()  # Safety-Gymnasium registers them itself; without this, gymnasium warns of each override
    _install_gymnasium_aliases()
    _preload_hashable_colors(next(iter(spec.submodule_search_locations)))
    with without_adroit_notice():  # Safety-Gymnasium imports gymnasium-robotics
        safety_gymnasium = importlib.import_module("safety_gymnasium")
    _patch_registration(safety_gymnasium)
    safety_gym_reset.install(importlib.import_module("safety_gymnasium.world"))
    _PATCHED = True
    return safety_gymnasium
