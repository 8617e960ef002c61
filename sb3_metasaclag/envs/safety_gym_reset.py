"""Fast resets of Safety-Gymnasium's builder tasks (Circle, Goal, Button, Push, Race, ...).

Safety-Gymnasium rebuilds the MuJoCo model on every reset: it writes the world (with the new layout) as XML and
compiles it. Almost all of that time (about 0.5-2 s here) is spent decoding the six 3259 x 3259 PNG images of the
skybox, which only rendering uses; compiling the rest of the world takes milliseconds.

With model reuse on (the default, installed by :func:`~sb3_metasaclag.envs.safety_gym_compat.import_safety_gymnasium`)
a reset after the first compiles the same XML with a one-pixel skybox in place of the images, and copies every compiled
array but the textures' into the world's existing model, in place; the skybox the first compile decoded stays.
Everything physics, sensors and cameras read is then compiled by MuJoCo from the same numbers as a rebuild would
compile it, so episodes are bit-for-bit those of rebuilding resets (``tests/test_safety_gymnasium.py`` checks
observations, rewards and costs).
Where the new XML's textures or materials differ from the kept model's, or the model's layout of arrays would change,
the reset compiles the full XML as Safety-Gymnasium does.

Switch it off for one environment with ``env.unwrapped.task.world.reuse_compiled_model = False``.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

#: The skybox element of Safety-Gymnasium's world XML (its only texture loaded from image files) and the one-pixel
#: skybox that stands in for it when only the rest is compiled (same count and order of textures, hence of names).
_SKYBOX = re.compile(r"<texture[^>]*\btype=\"skybox\"[^>]*?(/>|>\s*</texture>)")
_STAND_IN_SKYBOX = '<texture type="skybox" builtin="flat" width="1" height="1" rgb1="0 0 0" rgb2="0 0 0"/>'
#: The texture and material elements (their compiled arrays are kept from the first compile, so they must not change).
_APPEARANCE = re.compile(r"<(texture|material)\b[^>]*?(/>|>\s*</(texture|material)>)")
#: Compiled arrays that are the textures' own (kept from the model that has the skybox).
_TEXTURE_FIELDS = re.compile(r"^(tex_|mat_texid|mat_texuniform|mat_texrepeat|name_texadr|ntex)")

_WORLD: contextvars.ContextVar[Any] = contextvars.ContextVar("sb3_metasaclag_safety_gym_world", default=None)


def _array_fields(model: Any) -> dict[str, np.ndarray]:
    fields = {}
    for name in dir(model):
        if name.startswith("_"):
            continue
        try:
            value = getattr(model, name)
        except Exception:  # some attributes are properties that raise on models without the feature
            continue
        if isinstance(value, np.ndarray):
            fields[name] = value
    return fields


def _copy_compiled(source: Any, target: Any) -> bool:
    """Copy every compiled array of ``source`` but the textures' into ``target`` (and its statistics). Returns False,
    copying nothing, when an array's shape differs (a different world: the caller compiles from scratch)."""
    source_fields, target_fields = _array_fields(source), _array_fields(target)
    pairs = []
    for name, value in source_fields.items():
        if _TEXTURE_FIELDS.match(name) or name in ("names", "paths", "text_data"):
            continue
        kept = target_fields.get(name)
        if kept is None or kept.shape != value.shape or kept.dtype != value.dtype:
            return False
        pairs.append((kept, value))
    if source.names != target.names:  # name lookups read the kept buffer through the copied addresses
        return False
    for kept, value in pairs:
        kept[...] = value
    for attribute in ("meaninertia", "meanmass", "meansize", "extent", "center"):
        setattr(target.stat, attribute, getattr(source.stat, attribute))
    return True


class _ReusingMujoco(types.ModuleType):
    """``safety_gymnasium.world``'s view of the ``mujoco`` module: the same, except that ``MjModel.from_xml_string``
    reuses the model of the world being built (see the module docstring)."""

    def __init__(self, mujoco: types.ModuleType) -> None:
        super().__init__("mujoco")
        self._mujoco = mujoco
        self.MjModel = types.SimpleNamespace(from_xml_string=self._from_xml_string)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._mujoco, name)

    def _from_xml_string(self, xml: str, *args: Any, **kwargs: Any) -> Any:
        compile_xml: Callable[..., Any] = self._mujoco.MjModel.from_xml_string
        world = _WORLD.get()
        if world is None or args or kwargs or not getattr(world, "reuse_compiled_model", True):
            return compile_xml(xml, *args, **kwargs)
        kept = getattr(world, "_compiled_model", None)
        appearance = [match.group(0) for match in _APPEARANCE.finditer(xml)]
        if kept is not None and world._compiled_appearance == appearance:
            physics = compile_xml(_SKYBOX.sub(_STAND_IN_SKYBOX, xml, count=1))
            if _copy_compiled(physics, kept):
                return kept
        model = compile_xml(xml)
        world._compiled_model = model
        world._compiled_appearance = appearance
        return model


@contextlib.contextmanager
def _building(world: Any) -> Iterator[None]:
    token = _WORLD.set(world)
    try:
        yield
    finally:
        _WORLD.reset(token)


def install(world_module: types.ModuleType) -> None:
    """Make ``safety_gymnasium.world.World.build`` reuse each world's compiled model (idempotent)."""
    world_class = world_module.World
    if getattr(world_class.build, "_reuses_model", False):
        return
    original_build = world_class.build

    def build(self: Any) -> None:
        with _building(self):
            original_build(self)

    build._reuses_model = True  # type: ignore[attr-defined]
    build.__doc__ = original_build.__doc__
    world_class.build = build
    world_module.mujoco = _ReusingMujoco(world_module.mujoco)  # type: ignore[attr-defined]
