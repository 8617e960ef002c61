"""The Safety-Gymnasium compatibility layer (safety-gymnasium 1.0.0 on Python 3.11 + gymnasium 1.x)."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import sb3_metasaclag  # noqa: F401
from sb3_metasaclag.common.wrappers import SafetyGymnasiumToGymnasium
from sb3_metasaclag.envs.safety_gym_compat import import_safety_gymnasium, is_patched


@pytest.mark.parametrize("env_id", ["SafetyCarCircle2Gymnasium-v0", "SafetyHumanoidVelocityGymnasium-v1"])
def test_tasks_make_and_step_with_cost(env_id):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    assert env.observation_space.contains(obs.astype(env.observation_space.dtype))
    for _ in range(20):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert np.isfinite(info["cost"]) and info["cost"] >= 0
        assert np.isfinite(reward)
    env.close()


def test_import_is_idempotent():
    module = import_safety_gymnasium()
    assert is_patched()
    assert import_safety_gymnasium() is module
    import safety_gymnasium

    assert safety_gymnasium is module


def test_importing_twice_in_a_fresh_interpreter():
    code = (
        "import importlib, sb3_metasaclag, gymnasium as gym;"
        "from sb3_metasaclag.envs.safety_gym_compat import import_safety_gymnasium;"
        "import_safety_gymnasium(); importlib.reload(sb3_metasaclag); import safety_gymnasium;"
        "e = gym.make('SafetyCarCircle2Gymnasium-v0'); e.reset(seed=0);"
        "print(e.step(e.action_space.sample())[-1]['cost'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip().splitlines()[-1]) >= 0


def test_native_six_tuple_api_with_our_wrapper():
    import safety_gymnasium

    env = safety_gymnasium.make("SafetyCarCircle2-v0")
    env.reset(seed=0)
    assert len(env.step(env.action_space.sample())) == 6
    wrapped = SafetyGymnasiumToGymnasium(env)
    wrapped.reset(seed=1)
    assert len(result := wrapped.step(wrapped.action_space.sample())) == 5 and "cost" in result[-1]


def test_car_circle_passes_sb3_checker():
    from stable_baselines3.common.env_checker import check_env

    with pytest.warns(UserWarning):  # its action space is float64, which SB3 flags
        check_env(gym.make("SafetyCarCircle2Gymnasium-v0"))


def test_import_does_not_print_gymnasium_robotics_adroit_notice():
    import subprocess
    import sys

    script = "import sb3_metasaclag, farama_notifications; print('gymnasium_robotics' in farama_notifications.notifications)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert "AdroitHand" not in result.stderr
    assert result.stdout.strip() == "True"  # only withheld during the import, not removed


def _episodes(env_id: str, reuse: bool, resets: int = 4, steps: int = 40) -> tuple[list[np.ndarray], int]:
    """Observations, rewards and costs of a few short episodes under fixed random actions (seeded first reset), and how
    many MuJoCo models the resets after the first used."""
    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    rows, models = [], []  # the models are kept alive, so that their ids stay distinct
    for episode in range(resets):
        obs, _ = env.reset(seed=0 if episode == 0 else None)
        env.unwrapped.task.world.reuse_compiled_model = reuse
        if episode > 0:
            models.append(env.unwrapped.task.world.model)
        rows.append(np.asarray(obs, dtype=np.float64).copy())
        for _ in range(steps):
            obs, reward, terminated, truncated, info = env.step(rng.uniform(-1.0, 1.0, env.action_space.shape))
            rows.append(np.r_[obs, reward, info["cost"]])
            if terminated or truncated:
                break
    env.close()
    return rows, len({id(model) for model in models})


@pytest.mark.parametrize(
    "env_id", ["SafetyCarCircle2Gymnasium-v0", "SafetyPointGoal1Gymnasium-v0", "SafetyCarPush1Gymnasium-v0"]
)
def test_resets_that_reuse_the_compiled_model_give_the_rebuilding_resets_episodes(env_id):
    # Circle: only the agent's place changes between resets; Goal: the goal, hazards and a free vase move too; Push: a
    # free box with its own collision geoms. Bit for bit, over layouts that differ from reset to reset.
    (reused, reused_models), (rebuilt, rebuilt_models) = _episodes(env_id, reuse=True), _episodes(env_id, reuse=False)
    assert (reused_models, rebuilt_models) == (1, 3)
    assert len(reused) == len(rebuilt)
    assert all(np.array_equal(a, b) for a, b in zip(reused, rebuilt))
    assert not np.array_equal(reused[0], reused[len(reused) // 2])  # the episodes do differ


def test_reset_reuses_the_model_and_keeps_the_skybox():
    env = gym.make("SafetyCarCircle2Gymnasium-v0")
    env.reset(seed=0)
    world = env.unwrapped.task.world
    model = world.model
    skybox_pixels = model.tex_data.size
    layout = world.agent_xy.copy()
    env.reset()
    assert world.model is model and model.tex_data.size == skybox_pixels > 3 * 3259 * 3259  # the HD skybox, kept
    assert not np.array_equal(world.agent_xy, layout)
    agent = model.body("agent").id
    assert np.array_equal(model.body_pos[agent][:2], [float(str(v)) for v in world.agent_xy])  # the new start
    world.reuse_compiled_model = False
    env.reset()
    assert world.model is not model  # rebuilt, as Safety-Gymnasium does


def test_importing_the_package_imports_no_simulator_and_patches_nothing():
    script = (
        "import sys, gymnasium, gymnasium.wrappers, sb3_metasaclag;"
        "print([m for m in ('mujoco', 'safety_gymnasium', 'gymnasium_robotics', 'pybullet') if m in sys.modules]);"
        "print(hasattr(gymnasium.wrappers, 'compatibility'), 'gymnasium.wrappers.compatibility' in sys.modules);"
        "print(gymnasium.registry['SafetyCarCircle2Gymnasium-v0'].max_episode_steps)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.split("\n")[:3] == ["[]", "False False", "500"], result.stdout
    assert result.stderr == ""  # no warning on import


def test_the_first_make_imports_safety_gymnasium_without_warnings():
    script = (
        "import sys, gymnasium, sb3_metasaclag;"
        "env = gymnasium.make('SafetyCarCircle2Gymnasium-v0'); env.reset(seed=0);"
        "print('safety_gymnasium' in sys.modules, env.spec.max_episode_steps);"
        "print(gymnasium.registry['SafetyPointGoal1Gymnasium-v0'].entry_point)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    lines = result.stdout.strip().split("\n")
    assert lines[0] == "True 500"
    assert lines[1] == "safety_gymnasium.wrappers.gymnasium_conversion:make_gymnasium_environment"  # its own specs now
    assert "Overriding environment" not in result.stderr and "AdroitHand" not in result.stderr


def test_the_shipped_ids_are_safety_gymnasiums_own():
    import json

    from sb3_metasaclag.envs.safety_gym_compat import SPECS_FILE

    import_safety_gymnasium()
    with open(SPECS_FILE) as file:
        shipped = {spec["id"]: spec for spec in json.load(file)}
    own = {
        env_id: spec
        for env_id, spec in gym.registry.items()
        if spec.entry_point == "safety_gymnasium.wrappers.gymnasium_conversion:make_gymnasium_environment"
    }
    assert shipped.keys() == own.keys() and len(own) == 298
    for env_id, spec in own.items():
        assert (shipped[env_id]["max_episode_steps"], shipped[env_id]["reward_threshold"]) == (
            spec.max_episode_steps,
            spec.reward_threshold,
        ), env_id
        assert shipped[env_id]["kwargs"] == spec.kwargs, env_id
