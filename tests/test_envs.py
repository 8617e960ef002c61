"""Built-in environments: checkers, documented behaviour, seeding."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env

import sb3_metasaclag  # noqa: F401  (registers the environments)
from sb3_metasaclag.envs import (
    BANDIT_ENV_IDS,
    BUILTIN_ENV_IDS,
    SafeBanditEnv,
    SafeCircleEnv,
    SafeNavigation2DEnv,
    scripted_circle_policy,
    scripted_safe_policy,
)

ENV_IDS = list(dict.fromkeys([*BUILTIN_ENV_IDS, *BANDIT_ENV_IDS]))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_checkers_pass(env_id):
    env = gym.make(env_id)
    check_env(env)
    check_env(env.unwrapped)
    gym_check_env(env.unwrapped)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_cost_reported_every_step(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(300):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert isinstance(info["cost"], float) and info["cost"] in (0.0, 1.0)
        assert np.isfinite(reward)
        if terminated or truncated:
            env.reset()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_seeding_reproduces_trajectories(env_id):
    def rollout(seed):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        trajectory = [obs]
        for _ in range(50):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            trajectory += [obs, np.array([reward, info["cost"]])]
            if terminated or truncated:
                trajectory.append(env.reset()[0])
        return np.concatenate([np.ravel(x) for x in trajectory])

    np.testing.assert_array_equal(rollout(3), rollout(3))
    if env_id in ("SafeNavigation2D-v0", "SafeBanditContext-v0"):  # the other bandits have a constant observation
        assert not np.array_equal(rollout(3), rollout(4))


def test_bandit_known_optimum():
    env = SafeBanditEnv()
    env.reset(seed=0)
    assert env.constrained_optimum == 0.5
    actions = np.linspace(-1, 1, 201)
    outcomes = [env.step(np.array([a], dtype=np.float32)) for a in actions]
    rewards = np.array([out[1] for out in outcomes])
    costs = np.array([out[4]["cost"] for out in outcomes])
    assert np.all(np.diff(rewards) > 0), "reward increases with the action"
    assert np.all(costs[actions > 0.5] == 1.0) and np.all(costs[actions <= 0.5] == 0.0)
    best_safe = actions[costs == 0][np.argmax(rewards[costs == 0])]
    assert best_safe == pytest.approx(env.constrained_optimum)
    assert all(out[2] for out in outcomes), "every episode is one step"


def test_bandit_rejects_bad_parameters():
    with pytest.raises(ValueError, match="safe_limit"):
        SafeBanditEnv(safe_limit=1.5)
    with pytest.raises(ValueError, match="reward_scale"):
        SafeBanditEnv(reward_scale=0.0)


def test_scripted_policy_reaches_goal_safely():
    env = gym.make("SafeNavigation2D-v0")
    returns, lengths = [], []
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        total, cost = 0.0, 0.0
        for step in range(200):
            obs, reward, terminated, truncated, info = env.step(scripted_safe_policy(obs))
            total += reward
            cost += info["cost"]
            if terminated or truncated:
                break
        assert info["is_success"] and cost == 0.0
        returns.append(total)
        lengths.append(step + 1)
    # Documented in SafeNavigation2DEnv's docstring.
    assert 28.0 <= min(returns) and max(returns) <= 30.5
    assert 40 <= min(lengths) and max(lengths) <= 55


def test_straight_line_violates_and_terminates():
    env = gym.make("SafeNavigation2D-v0")
    obs, _ = env.reset(seed=0)
    for _ in range(200):
        obs, _, terminated, truncated, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
        if terminated or truncated:
            break
    assert terminated and info["cost"] == 1.0 and not info["is_success"]


def test_navigation_without_termination_keeps_going_through_hazard():
    env = SafeNavigation2DEnv(terminate_on_violation=False)
    env.reset(seed=0)
    costs = []
    for _ in range(60):
        _, _, terminated, _, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
        costs.append(info["cost"])
        if terminated:
            break
    assert sum(costs) > 1 and info["is_success"]


def test_navigation_dict_observations():
    env = gym.make("SafeNavigation2D-v0", dict_observations=True)
    check_env(env)
    obs, _ = env.reset(seed=0)
    flat, _ = gym.make("SafeNavigation2D-v0").reset(seed=0)
    np.testing.assert_array_equal(np.concatenate([obs["position"], obs["goal_offset"], obs["hazard_offset"]]), flat)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rgb_array_rendering(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    image = env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert len(np.unique(image.reshape(-1, 3), axis=0)) >= 3  # background, unsafe region, agent
    plain = gym.make(env_id)
    plain.reset(seed=0)
    assert plain.render() is None


def _rollout(env, policy, seed):
    obs, _ = env.reset(seed=seed)
    total, violating_steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        total += reward
        violating_steps += info["cost"] > 0
        if terminated or truncated:
            return total, violating_steps, terminated


def test_soft_navigation_straight_line_crosses_the_hazard_for_as_much_return_as_the_detour():
    env = gym.make("SafeNavigation2DSoft-v0")
    straight = [_rollout(env, lambda obs: obs[2:4] / np.linalg.norm(obs[2:4]), seed) for seed in range(20)]
    detour = [_rollout(env, scripted_safe_policy, seed) for seed in range(20)]
    # The straight line runs through the hazard (about 16 violating steps) without ending the episode, and is worth
    # slightly more than the safe detour: an unconstrained agent has no reason to go around.
    assert all(steps >= 10 for _, steps, _ in straight) and all(steps == 0 for _, steps, _ in detour)
    assert np.mean([r for r, _, _ in straight]) > np.mean([r for r, _, _ in detour])


@pytest.mark.parametrize("env_id", ["SafeCircle-v0", "SafeCircleSoft-v0"])
def test_circle_known_answers(env_id):
    env = gym.make(env_id)
    safe = [_rollout(env, scripted_circle_policy, seed) for seed in range(20)]
    # Documented in SafeCircleEnv's docstring: about 14.2 without a single violation.
    assert all(steps == 0 for _, steps, _ in safe)
    assert 13.5 <= min(r for r, _, _ in safe) and max(r for r, _, _ in safe) <= 15.0
    lap = [_rollout(env, lambda obs: scripted_circle_policy(obs, safe=False), seed) for seed in range(20)]
    if env_id == "SafeCircleSoft-v0":
        # The whole circle: more return, and about 110 violating steps of 200.
        assert min(r for r, _, _ in lap) > max(r for r, _, _ in safe) + 3.0
        assert all(90 <= steps <= 130 for _, steps, _ in lap)
    else:
        assert all(terminated and steps == 1 for _, steps, terminated in lap)  # the hard variant ends at the wall


def test_circle_rejects_bad_parameters():
    with pytest.raises(ValueError, match="wall_x must lie in"):
        SafeCircleEnv(wall_x=1.5)
    with pytest.raises(ValueError, match="radius must be > 0"):
        SafeCircleEnv(radius=0.0)


@pytest.mark.parametrize("env_id", BANDIT_ENV_IDS)
def test_bandit_constrained_optimum_is_the_best_safe_action(env_id):
    # Brute force over a fine grid of actions, per context: the best non-violating action is the closed form.
    env = gym.make(env_id)
    bandit = env.unwrapped
    grid = np.linspace(-1, 1, 4001)
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        rewards, costs = [], []
        for action in grid:
            env.reset(seed=seed)
            _, reward, terminated, _, info = env.step(np.array([action], dtype=np.float32))
            assert terminated
            rewards.append(reward)
            costs.append(info["cost"])
        safe = np.asarray(costs) == 0.0
        best = grid[safe][np.argmax(np.asarray(rewards)[safe])]
        assert best == pytest.approx(bandit.constrained_optimum_at(obs[0]), abs=1e-3)
        assert bandit.constrained_optimum == bandit.constrained_optimum_at(obs[0])
    if env_id == "SafeBanditNegative-v0":
        assert max(bandit.reward(a) for a in grid) < 0  # every reward negative


def test_bandit_rejects_bad_arguments():
    with pytest.raises(ValueError, match="reward_peak must lie in"):
        SafeBanditEnv(reward_peak=1.5)
    with pytest.raises(ValueError, match="reward_offset must be finite"):
        SafeBanditEnv(reward_offset=float("nan"))
    with pytest.raises(ValueError, match="reward_scale must be > 0"):
        SafeBanditEnv(reward_scale=float("nan"))
