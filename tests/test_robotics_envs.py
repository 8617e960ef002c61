"""The paper's robotics tasks: registration, check_env, seeding, and controllers that show the cost means something."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env

import sb3_metasaclag  # noqa: F401  (registers the environments)
from sb3_metasaclag.envs import ROBOTICS_ENV_IDS
from sb3_metasaclag.envs.drawer_close import SafeDrawerCloseEnv, ScriptedDrawerCloser
from sb3_metasaclag.envs.egg_manipulate import SafeEggManipulateEnv
from sb3_metasaclag.envs.fetch_push_topple import SafeFetchPushToppleEnv, ScriptedPusher

PAPER_TASKS = [*ROBOTICS_ENV_IDS, "SafetyCarCircle2Gymnasium-v0", "SafetyHumanoidVelocityGymnasium-v1"]


def flat(obs):
    return np.concatenate([obs[key] for key in sorted(obs)]) if isinstance(obs, dict) else np.asarray(obs)


@pytest.mark.parametrize("env_id", PAPER_TASKS)
def test_made_with_gymnasium_passes_check_env_and_reports_cost(env_id):
    env = gym.make(env_id)
    check_env(env)
    env.reset(seed=0)
    env.action_space.seed(0)
    costs = []
    for _ in range(1000):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert np.isfinite(reward) and np.all(np.isfinite(flat(obs)))
        costs.append(info["cost"])
        if terminated or truncated:
            env.reset()
    costs = np.array(costs)
    assert costs.dtype.kind == "f" and np.all((costs == 0.0) | (costs == 1.0)), "costs are 0/1 indicators"
    env.close()


@pytest.mark.parametrize("env_id", ROBOTICS_ENV_IDS)
def test_seeding_reproduces_an_episode(env_id):
    def rollout():
        env = gym.make(env_id)
        obs, _ = env.reset(seed=3)
        env.action_space.seed(3)
        trace = [flat(obs)]
        for _ in range(25):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            trace.append(np.append(flat(obs), [reward, info["cost"], terminated, truncated]))
        env.close()
        return np.concatenate(trace)

    first, second = rollout(), rollout()
    np.testing.assert_array_equal(first, second)
    env = gym.make(env_id)
    other, _ = env.reset(seed=4)
    assert not np.array_equal(flat(other), first[: flat(other).size]), "a different seed gives a different start"


# ----------------------------------------------------------------------------------------------------------------------
# Humanoid: Safety-Gymnasium's task without its alive bonus
# ----------------------------------------------------------------------------------------------------------------------


def test_humanoid_reward_drops_only_the_alive_bonus():
    ours, base = gym.make("SafeHumanoidVelocity-v1"), gym.make("SafetyHumanoidVelocityGymnasium-v1")
    obs_ours, _ = ours.reset(seed=0)
    obs_base, _ = base.reset(seed=0)
    np.testing.assert_array_equal(obs_ours, obs_base)
    rng = np.random.default_rng(0)
    for _ in range(200):
        action = rng.uniform(-0.4, 0.4, size=17).astype(np.float32)
        obs_ours, reward, terminated, truncated, info = ours.step(action)
        obs_base, base_reward, base_terminated, base_truncated, base_info = base.step(action)
        np.testing.assert_array_equal(obs_ours, obs_base)
        assert (info["cost"], terminated, truncated) == (base_info["cost"], base_terminated, base_truncated)
        assert reward == pytest.approx(info["reward_linvel"] + info["reward_quadctrl"], abs=1e-12)
        assert base_reward - reward == pytest.approx(5.0, abs=1e-9)  # the alive bonus, paid while the torso is up
        if terminated:
            break


def test_humanoid_cost_is_the_speed_limit():
    env = gym.make("SafeHumanoidVelocity-v1")
    # Careful: no action, the humanoid slumps slowly until the episode ends - never over the limit.
    env.reset(seed=0)
    for _ in range(1000):
        _, _, terminated, truncated, info = env.step(np.zeros(17, dtype=np.float32))
        assert info["cost"] == float(np.hypot(info["x_velocity"], info["y_velocity"]) > 1.4149) == 0.0
        if terminated or truncated:
            break
    # Careless: the same humanoid thrown forward at 3 m/s violates on the first step.
    env.reset(seed=0)
    mujoco_env = env.unwrapped
    qvel = mujoco_env.data.qvel.copy()
    qvel[0] = 3.0
    mujoco_env.set_state(mujoco_env.data.qpos.copy(), qvel)
    info = env.step(np.zeros(17, dtype=np.float32))[-1]
    assert info["x_velocity"] > 1.4149 and info["cost"] == 1.0


# ----------------------------------------------------------------------------------------------------------------------
# Drawer close: the base must go around the red region
# ----------------------------------------------------------------------------------------------------------------------


def run_drawer(safe, seed):
    env = SafeDrawerCloseEnv()
    env.reset(seed=seed)
    controller = ScriptedDrawerCloser(safe=safe)
    cost, steps = 0.0, 0
    for steps in range(1, 301):
        _, _, terminated, _, info = env.step(controller(env))
        cost += info["cost"]
        if terminated:
            break
    return cost, info["is_success"], env.drawer_opening, steps


@pytest.mark.parametrize("seed", [0, 1])
def test_drawer_safe_path_closes_without_cost_straight_path_costs(seed):
    cost, success, opening, steps = run_drawer(safe=True, seed=seed)
    assert success and opening < 0.01 and cost == 0.0 and steps < 300
    cost, success, _, _ = run_drawer(safe=False, seed=seed)
    assert cost >= 10  # the straight path crosses the 0.5 m deep region: many steps inside it
    assert success  # the task itself is still solved: the cost is what separates the two paths


def test_drawer_starts_open_and_hazard_matches_the_isaac_gym_region():
    env = SafeDrawerCloseEnv()
    env.reset(seed=0)
    assert env.drawer_opening == pytest.approx(0.2)
    inside = [(-0.2, -0.5), (0.3, 0.5), (0.0, 0.0)]
    outside = [(-0.21, 0.0), (0.31, 0.0), (0.0, 0.51), (0.0, -0.51)]
    assert all(SafeDrawerCloseEnv.in_hazard(x, y) for x, y in inside)
    assert not any(SafeDrawerCloseEnv.in_hazard(x, y) for x, y in outside)
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.full(10, np.nan))


# ----------------------------------------------------------------------------------------------------------------------
# Fetch PushTopple: a low, slow push moves the box; a fast, high push topples it
# ----------------------------------------------------------------------------------------------------------------------


def run_push(speed, height, seed):
    env = SafeFetchPushToppleEnv()
    obs, _ = env.reset(seed=seed)
    start = np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"])
    controller = ScriptedPusher(speed=speed, height=height)
    cost = 0.0
    for _ in range(50):
        obs, _, _, truncated, info = env.step(controller(obs))
        cost += info["cost"]
    assert truncated
    return start, np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"]), cost, info


def test_fetch_careful_push_progresses_without_toppling():
    results = [run_push(speed=0.3, height=0.02, seed=seed) for seed in range(5)]
    assert all(cost == 0.0 and info["tilt"] < 45 for _, _, cost, info in results)
    assert np.mean([end for _, end, _, _ in results]) < 0.5 * np.mean([start for start, _, _, _ in results])
    assert sum(info["is_success"] for _, _, _, info in results) >= 2


def test_fetch_fast_high_push_topples_the_box():
    for seed in range(3):
        _, _, cost, info = run_push(speed=1.0, height=0.1, seed=seed)
        assert cost > 0 and info["tilt"] > 45


def test_fetch_box_is_tall_and_validated():
    env = SafeFetchPushToppleEnv()
    height = 2 * env.model.geom_size[env._model_names.geom_name2id["object0"]][2]
    assert 0.10 <= height <= 0.12
    with pytest.raises(ValueError, match="reward_type"):
        SafeFetchPushToppleEnv(reward_type="shaped")
    with pytest.raises(ValueError, match="max_episode_steps"):
        SafeFetchPushToppleEnv(max_episode_steps=0)


# ----------------------------------------------------------------------------------------------------------------------
# Egg: dropping or squeezing violates; the force is checked at every physics substep
# ----------------------------------------------------------------------------------------------------------------------


def run_egg(action, seed=0, steps=100):
    env = SafeEggManipulateEnv()
    env.reset(seed=seed)
    infos = [env.step(np.full(20, action, dtype=np.float32))[-1] for _ in range(steps)]
    return env, infos


def test_egg_gentle_hold_keeps_the_egg_without_violation():
    for seed in (0, 1):
        env, infos = run_egg(0.0, seed=seed)
        assert all(info["cost"] == 0.0 for info in infos)
        assert env.egg_height() > 0.14 and max(info["max_contact_force"] for info in infos) < 20.0


def test_egg_hard_squeeze_exceeds_20_newtons():
    _, infos = run_egg(1.0, steps=40)
    assert max(info["max_contact_force"] for info in infos) > 20.0
    assert any(info["cost"] == 1.0 and not info["dropped"] for info in infos)


def test_egg_dropped_egg_violates():
    env, infos = run_egg(-1.0, steps=60)
    assert infos[-1]["dropped"] and infos[-1]["cost"] == 1.0 and env.egg_height() < 0.10


def test_egg_force_is_checked_at_every_substep():
    env = SafeEggManipulateEnv()
    env.reset(seed=0)
    env.action_space.seed(0)
    missed = 0
    for _ in range(300):
        info = env.step(env.action_space.sample())[-1]
        end_of_step = env.egg_contact_force()
        assert info["max_contact_force"] >= end_of_step - 1e-9
        if info["max_contact_force"] > 20.0 >= end_of_step:
            missed += 1  # a violation that a check at the end of the step alone would miss
    assert missed > 0


# ----------------------------------------------------------------------------------------------------------------------
# Learning on a Dict-observation task
# ----------------------------------------------------------------------------------------------------------------------


def test_meta_sac_lag_learns_on_fetch_push_topple():
    from sb3_metasaclag import MetaSACLag

    model = MetaSACLag("MultiInputPolicy", "SafeFetchPushTopple-v0", learning_starts=100, seed=0)
    model.learn(300)
    assert model.num_timesteps == 300
    assert model.replay_buffer.size() == 300 and model.replay_buffer.safety.size() > 0  # early pushes topple the box


def test_missing_robotics_dependencies_give_a_clear_error():
    from sb3_metasaclag.envs.helpers import require_robotics

    require_robotics(None)
    with pytest.raises(gym.error.DependencyNotInstalled, match=r"sb3-metasaclag\[robotics\].*No module named 'mujoco'"):
        require_robotics(ImportError("No module named 'mujoco'"))


def test_generated_model_files_live_in_a_private_per_process_directory(tmp_path):
    import os
    import stat
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from sb3_metasaclag.envs.helpers import model_directory, write_model

    # A file planted where the models used to go (a predictable shared directory) is never read.
    planted = Path(tempfile.gettempdir()) / f"sb3_metasaclag_models_{os.getuid()}"
    planted.mkdir(exist_ok=True)
    path = write_model("probe", "<mujoco/>")
    assert Path(path).parent == model_directory() and Path(path).read_text() == "<mujoco/>"
    assert Path(path).parent != planted and not Path(path).parent.samefile(planted)
    mode = model_directory().stat()
    assert stat.S_IMODE(mode.st_mode) == 0o700 and mode.st_uid == os.getuid()
    assert write_model("probe", "<mujoco/>") == path  # one file per content
    script = "from sb3_metasaclag.envs.helpers import write_model; print(write_model('probe', '<mujoco/>'))"
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    other_path = other.stdout.strip().splitlines()[-1]
    assert Path(other_path).parent != Path(path).parent  # another process, another directory
    assert not Path(other_path).exists()  # removed when that process exited


@pytest.mark.parametrize("env_class", [SafeFetchPushToppleEnv, SafeEggManipulateEnv])
def test_goal_conditioned_tasks_truncate_by_themselves_after_max_episode_steps(env_class):
    env = env_class(max_episode_steps=7)  # not through gym.make, whose max_episode_steps adds a TimeLimit instead
    for _ in range(2):  # and count again from 0 after a reset
        env.reset(seed=0)
        flags = [env.step(np.zeros(env.action_space.shape, dtype=np.float32))[3] for _ in range(7)]
        assert flags == [False] * 6 + [True]
    with pytest.raises(ValueError, match="max_episode_steps must be a positive integer"):
        env_class(max_episode_steps=0)
