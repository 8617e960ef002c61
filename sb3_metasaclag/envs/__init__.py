"""Safe environments, registered with gymnasium on import of the package.

``SafeBandit-v0`` (and the other bandits of :data:`~sb3_metasaclag.envs.bandit.BANDITS`), ``SafeNavigation2D-v0``
(and its soft-constraint variant ``SafeNavigation2DSoft-v0``),
``SafeCircle-v0`` and ``SafeCircleSoft-v0`` are pure numpy. The paper's robotics tasks (``SafeHumanoidVelocity-v1``,
``SafeDrawerClose-v0``, ``SafeFetchPushTopple-v0``, ``SafeEggManipulate-v0``, ``SafePourCoffee-v0``) need MuJoCo,
gymnasium-robotics, Safety-Gymnasium or PyBullet; their modules are imported only when such an environment is made.
Safety-Gymnasium's own ``Safety...Gymnasium-v*`` ids are registered the same way, when it is installed: it is imported
(and mended, see :mod:`~sb3_metasaclag.envs.safety_gym_compat`) by the first ``gymnasium.make`` of one of them.
"""

from sb3_metasaclag.envs.bandit import BANDITS, SafeBanditEnv
from sb3_metasaclag.envs.circle import SafeCircleEnv, scripted_circle_policy
from sb3_metasaclag.envs.navigation import SafeNavigation2DEnv, scripted_safe_policy

__all__ = [
    "BANDIT_ENV_IDS",
    "BUILTIN_ENV_IDS",
    "ROBOTICS_ENV_IDS",
    "SafeBanditEnv",
    "SafeCircleEnv",
    "SafeNavigation2DEnv",
    "register_envs",
    "scripted_circle_policy",
    "scripted_safe_policy",
]

#: Pure-numpy environments.
BUILTIN_ENV_IDS = ("SafeBandit-v0", "SafeNavigation2D-v0", "SafeNavigation2DSoft-v0", "SafeCircle-v0", "SafeCircleSoft-v0")
#: The one-step bandits with known constrained optima of different shapes (``SafeBandit-v0`` among them).
BANDIT_ENV_IDS = tuple(env_id for env_id, _ in BANDITS)
#: Pure-numpy tasks: (id, entry point, registration arguments). The soft variants count violations without ending the
#: episode, so that an agent can trade violations for reward (stock SAC does).
_BUILTIN: tuple[tuple[str, str, dict], ...] = (
    *((env_id, "sb3_metasaclag.envs.bandit:SafeBanditEnv", {"kwargs": kwargs}) for env_id, kwargs in BANDITS),
    ("SafeNavigation2D-v0", "sb3_metasaclag.envs.navigation:SafeNavigation2DEnv", {"max_episode_steps": 200}),
    (
        "SafeNavigation2DSoft-v0",
        "sb3_metasaclag.envs.navigation:SafeNavigation2DEnv",
        {"max_episode_steps": 200, "kwargs": {"terminate_on_violation": False}},
    ),
    ("SafeCircle-v0", "sb3_metasaclag.envs.circle:SafeCircleEnv", {"max_episode_steps": 200}),
    (
        "SafeCircleSoft-v0",
        "sb3_metasaclag.envs.circle:SafeCircleEnv",
        {"max_episode_steps": 200, "kwargs": {"terminate_on_violation": False}},
    ),
)
#: The paper's robotics tasks: (id, entry point, extra registration arguments). The goal-conditioned tasks truncate by
#: themselves and are made without gymnasium's wrappers, which do not forward ``compute_reward`` (see
#: ``helpers.check_episode_steps``); ``SafeHumanoidVelocity-v1`` has Safety-Gymnasium's 1000-step limit inside.
_GOAL_ENV = {"order_enforce": False, "disable_env_checker": True}
_ROBOTICS: tuple[tuple[str, str, dict], ...] = (
    ("SafeHumanoidVelocity-v1", "sb3_metasaclag.envs.humanoid:make_safe_humanoid_velocity", {}),
    ("SafeDrawerClose-v0", "sb3_metasaclag.envs.drawer_close:SafeDrawerCloseEnv", {"max_episode_steps": 300}),
    ("SafeFetchPushTopple-v0", "sb3_metasaclag.envs.fetch_push_topple:SafeFetchPushToppleEnv", _GOAL_ENV),
    ("SafeEggManipulate-v0", "sb3_metasaclag.envs.egg_manipulate:SafeEggManipulateEnv", _GOAL_ENV),
    # PyBullet; truncates by itself after max_episode_steps (200 by default).
    ("SafePourCoffee-v0", "sb3_metasaclag.envs.pour_coffee:SafePourCoffeeEnv", {}),
)
ROBOTICS_ENV_IDS = tuple(env_id for env_id, _, _ in _ROBOTICS)


def register_envs() -> None:
    """Register the built-in environments and the robotics tasks with gymnasium (idempotent)."""
    import gymnasium as gym

    for env_id, entry_point, registration in _BUILTIN + _ROBOTICS:
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, **registration)
    from sb3_metasaclag.envs.safety_gym_compat import register_safety_gymnasium_ids

    register_safety_gymnasium_ids()
