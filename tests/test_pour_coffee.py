"""Pour Coffee (PyBullet digital twin of the paper's real-world task): kinematics, coffee, violations, Table 2."""

import math

import gymnasium as gym
import numpy as np
import pytest

import sb3_metasaclag  # noqa: F401  (registers the environments)
from sb3_metasaclag.envs.kinova_gen3 import HOME_DEG, forward_kinematics
from sb3_metasaclag.envs.pour_coffee import (
    GOAL_PHI,
    SafePourCoffeeEnv,
    ScriptedPour,
    critical_angle,
    fill_at_angle,
)


def test_gen3_forward_kinematics_matches_published_flange_positions():
    # Kinova's published flange positions: zero pose and home pose [0, 15, 180, -130, 0, 55, 90] degrees.
    np.testing.assert_allclose(forward_kinematics(np.zeros(7))[:3, 3], [0.0, -0.0249, 1.1874], atol=2e-3)
    np.testing.assert_allclose(forward_kinematics(np.deg2rad(HOME_DEG))[:3, 3], [0.457, 0.001, 0.434], atol=2e-3)
    with pytest.raises(ValueError, match="7 joint angles"):
        forward_kinematics(np.zeros(6))


def test_pybullet_model_agrees_with_the_kinematics():
    env = SafePourCoffeeEnv()
    p, client = env._p, env._client
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = rng.uniform(-2.0, 2.0, size=7)
        env._set_arm(q)
        flange = p.getLinkState(env.robot, 7, computeForwardKinematics=1, physicsClientId=client)[4]
        np.testing.assert_allclose(flange, forward_kinematics(q)[:3, 3], atol=1e-5)
    info = [p.getJointInfo(env.robot, j, physicsClientId=client) for j in range(7)]
    assert [round(i[11], 4) for i in info[:4]] == [1.3963] * 4 and [round(i[11], 4) for i in info[4:]] == [1.2218] * 3
    assert (info[1][8], info[1][9]) == (-2.41, 2.41) and info[0][8] > info[0][9]  # J1 continuous (lower > upper)


def test_liquid_model_spills_like_coffee():
    # 10 cm mug, 4 cm radius: 45 degrees at a 6 cm fill, 60 degrees at 3 cm (real coffee at 3-6 cm: about 43-60).
    assert math.degrees(critical_angle(0.06)) == pytest.approx(45.0)
    assert math.degrees(critical_angle(0.03)) == pytest.approx(60.3, abs=0.1)
    assert fill_at_angle(critical_angle(0.05)) == pytest.approx(0.05)
    assert fill_at_angle(math.pi / 2) == 0.0


def rollout(env, policy, steps, seed=0):
    obs, _ = env.reset(seed=seed)
    infos, rewards = [], []
    for step in range(steps):
        obs, reward, terminated, truncated, info = env.step(np.asarray(policy(step, obs), dtype=np.float32))
        infos.append(info)
        rewards.append(reward)
    return infos, rewards


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scripted_smooth_move_and_pour_succeeds_without_violation(seed):
    env = SafePourCoffeeEnv()
    controller = ScriptedPour()
    infos, rewards = rollout(env, lambda step, obs: controller(obs), 200, seed=seed)
    last = infos[-1]
    assert all(info["cost"] == 0.0 for info in infos)
    assert last["is_success"] and last["success"] and last["poured"] > 0.9 and last["spilled_total"] == 0.0
    assert last["distance"] < 0.05 and rewards[-1] > 8.0  # inside d_thresh: -|phi - phi_goal| + 10
    assert last["ee_acceleration_max"] < 2.0  # a smooth move
    for key in ("ee_acceleration_mean", "ee_jerk_mean", "ee_jerk_max"):
        assert key in last and np.isfinite(last[key])


def test_jerky_move_spills():
    env = SafePourCoffeeEnv()
    infos, _ = rollout(env, lambda step, obs: [1.0 if step % 2 == 0 else -1.0, 0.0, 0.0, 0.0], 20)
    assert any(info["spilled"] and info["cost"] == 1.0 for info in infos)
    assert not any(info["collision"] for info in infos)
    assert infos[-1]["spilled_total"] > 0 and infos[-1]["poured"] == 0.0
    assert env.episode_metrics()["ee_acceleration_max"] > 8.0


def test_fast_tilt_away_from_the_target_spills_slow_small_tilt_does_not():
    env = SafePourCoffeeEnv()
    infos, _ = rollout(env, lambda step, obs: [0.0, 0.0, 0.0, 1.0], 40)
    assert any(info["spilled"] and info["cost"] == 1.0 for info in infos) and infos[-1]["spilled_total"] > 0.5
    infos, _ = rollout(env, lambda step, obs: [0.0, 0.0, 0.0, 0.1], 40)
    assert not any(info["spilled"] or info["cost"] for info in infos)


def test_driving_into_the_table_collides():
    env = SafePourCoffeeEnv()
    infos, _ = rollout(env, lambda step, obs: [0.0, 0.0, -1.0, 0.0], 80)
    assert any(info["collision"] and info["cost"] == 1.0 for info in infos)
    assert not infos[0]["collision"]  # contacts of the arm's own links in the home pose are ignored


def test_self_collision_is_a_violation():
    env = SafePourCoffeeEnv()
    env.reset(seed=0)
    folded = np.deg2rad(HOME_DEG)
    folded[[1, 3, 5]] = (-2.3, -2.6, -1.1)  # shoulder and elbow folded: the mug meets the shoulder
    env._set_arm(folded)
    info = env.step(np.zeros(4, dtype=np.float32))[-1]
    assert info["collision"] and info["cost"] == 1.0 and not info["spilled"]


def test_table_2_settings_change_reward_and_cost():
    def jerky(step, obs):
        return [1.0 if step % 2 == 0 else -1.0, 0.0, 0.0, 0.0]

    results = {}
    for setting in (1, 2, 3, 4):
        infos, rewards = rollout(SafePourCoffeeEnv(setting=setting), jerky, 12)
        results[setting] = (infos, np.array(rewards))
    infos_1, rewards_1 = results[1]
    distance = np.array([info["distance"] for info in infos_1])
    spilled = np.array([info["spilled"] for info in infos_1])
    assert spilled.any() and not any(info["collision"] for info in infos_1)
    # Setting 1: distance only (the real robot's setting).
    np.testing.assert_allclose(rewards_1, -2.0 * distance)
    # Settings 2 and 3: distance and acceleration, the same reward; 4 adds -1 on spilling steps.
    np.testing.assert_allclose(results[2][1], results[3][1])
    assert np.all(results[2][1] < rewards_1)
    np.testing.assert_allclose(results[4][1], results[3][1] - 1.0 * spilled)
    # Violations: spillage counts in settings 1, 3, 4, not in 2 (collision only).
    costs = {setting: np.array([info["cost"] for info in infos]) for setting, (infos, _) in results.items()}
    for setting in (1, 3, 4):
        np.testing.assert_array_equal(costs[setting], spilled.astype(float))
    assert not costs[2].any()
    with pytest.raises(ValueError, match="Table 2"):
        SafePourCoffeeEnv(setting=5)


def test_spaces_goal_and_invalid_input():
    env = gym.make("SafePourCoffee-v0")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (15,) and env.action_space.shape == (4,)
    assert obs[14] == pytest.approx(GOAL_PHI) and np.allclose(obs[3:6], 0.0, atol=0.1)  # mug upright at home
    with pytest.raises(ValueError, match="shape"):
        env.unwrapped.step(np.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        env.unwrapped.step(np.array([np.nan, 0, 0, 0]))
    with pytest.raises(ValueError, match="fill_height"):
        SafePourCoffeeEnv(fill_height=0.2)


def test_render_gives_an_image(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env = SafePourCoffeeEnv(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8 and frame.std() > 10
    path = tmp_path / "frame.png"
    plt.imsave(path, frame)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_meta_sac_lag_learns_on_pour_coffee():
    from sb3_metasaclag import MetaSACLag

    model = MetaSACLag("MlpPolicy", "SafePourCoffee-v0", learning_starts=100, seed=0)
    model.learn(300)
    assert model.num_timesteps == 300


def test_fig3_metrics_reach_the_end_of_an_episode_that_a_violation_ends():
    from sb3_metasaclag.common.wrappers import HardConstraint

    env = HardConstraint(SafePourCoffeeEnv(setting=3))  # spillage counts: the jerky move violates within 20 steps
    env.reset(seed=0)
    for step in range(20):
        _, _, terminated, truncated, info = env.step(np.array([1.0 if step % 2 == 0 else -1.0, 0.0, 0.0, 0.0]))
        if terminated or truncated:
            break
    assert terminated and info["constraint_violated"]
    assert all(np.isfinite(info[key]) for key in ("ee_acceleration_mean", "ee_jerk_mean", "ee_jerk_max"))
    assert info["ee_acceleration_max"] > 8.0 and info["success"] is False
