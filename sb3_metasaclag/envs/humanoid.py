"""``SafeHumanoidVelocity-v1``: Safety-Gymnasium's Humanoid-Velocity task without its safety-related reward shaping.

The paper (Appendix C) trains on Safety-Gymnasium's ``SafetyHumanoidVelocity-v1`` "with the safety-related reward shaping
removed". Safety-Gymnasium 1.0.0's reward for that task (``safe_velocity/safety_humanoid_velocity_v0.py``, inherited
unchanged by v1) has three terms, each reported in ``info``:

- ``reward_linvel``: ``1.25 * x_velocity`` of the centre of mass - the task (run forward);
- ``reward_quadctrl``: ``-0.1 * ||action||^2`` - an effort penalty;
- ``reward_alive``: ``+5`` for every step the torso height stays in ``[1.0, 2.0]`` - a bonus for not falling.

The alive bonus is the safety-related shaping: it pays the agent for staying upright, the fall-avoidance behaviour,
at 5 per step (more than the forward term at the velocity limit, ``1.25 * 1.4149 = 1.77``). With it, every policy that
does not fall earns most of its return from it, so return says little about how the policy trades speed against the
velocity constraint. This environment removes it and keeps the rest as is: reward = ``reward_linvel +
reward_quadctrl``; the cost (``info["cost"] = 1`` when the planar speed exceeds 1.4149 m/s), the termination when
the torso leaves ``[1.0, 2.0]`` (the episode simply ends: falling is no longer paid for, nor fined), the 1000-step
limit and the observation (376) and action (17, within +-0.4) spaces are Safety-Gymnasium's. ``info["reward_alive"]``
still reports the bonus that was removed. Safety-Gymnasium's v0 had already dropped Gymnasium Humanoid's contact cost.

Requires Safety-Gymnasium (``pip install --no-deps safety-gymnasium==1.0.0``; see docs/installation.md).
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym

BASE_ENV_ID = "SafetyHumanoidVelocityGymnasium-v1"


class RemoveAliveBonus(gym.Wrapper):
    """Replace the reward by ``info["reward_linvel"] + info["reward_quadctrl"]`` (drops Safety-Gymnasium's alive bonus).

    :param env: A Safety-Gymnasium velocity task that reports these two terms in ``info``.
    """

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, _, terminated, truncated, info = self.env.step(action)
        try:
            reward = float(info["reward_linvel"]) + float(info["reward_quadctrl"])
        except KeyError as error:
            raise KeyError(
                f"RemoveAliveBonus expects info['reward_linvel'] and info['reward_quadctrl'] (Safety-Gymnasium velocity "
                f"tasks report them); missing {error}"
            ) from None
        return obs, reward, terminated, truncated, info


def make_safe_humanoid_velocity(**kwargs: Any) -> gym.Env:
    """Entry point of ``SafeHumanoidVelocity-v1``: ``SafetyHumanoidVelocityGymnasium-v1`` without the alive bonus."""
    from sb3_metasaclag.envs.safety_gym_compat import import_safety_gymnasium

    if import_safety_gymnasium() is None:
        raise gym.error.DependencyNotInstalled(
            "SafeHumanoidVelocity-v1 needs Safety-Gymnasium: pip install --no-deps safety-gymnasium==1.0.0 "
            "(with the `safety` extra of sb3-metasaclag; see docs/installation.md)"
        )
    return RemoveAliveBonus(gym.make(BASE_ENV_ID, **kwargs))
