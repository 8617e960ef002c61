"""Built-in safe environments (pure numpy, no MuJoCo), registered with gymnasium on import of the package."""

from sb3_metasaclag.common.envs.bandit import SafeBanditEnv
from sb3_metasaclag.common.envs.navigation import SafeNavigation2DEnv, scripted_safe_policy

__all__ = ["SafeBanditEnv", "SafeNavigation2DEnv", "register_envs", "scripted_safe_policy"]


def register_envs() -> None:
    """Register ``SafeBandit-v0`` and ``SafeNavigation2D-v0`` with gymnasium (idempotent)."""
    import gymnasium as gym

    if "SafeBandit-v0" not in gym.registry:
        gym.register(id="SafeBandit-v0", entry_point="sb3_metasaclag.common.envs.bandit:SafeBanditEnv")
    if "SafeNavigation2D-v0" not in gym.registry:
        gym.register(
            id="SafeNavigation2D-v0",
            entry_point="sb3_metasaclag.common.envs.navigation:SafeNavigation2DEnv",
            max_episode_steps=200,
        )
