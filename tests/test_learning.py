"""Learning on tasks with a known answer."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import SAC

from sb3_metasaclag import MetaSACLag
from sb3_metasaclag.common.envs import SafeBanditEnv


def evaluate(model, env_id: str, n_episodes: int, seed: int = 10_000) -> dict[str, float]:
    """Deterministic evaluation: success rate, fraction of episodes with a violation, mean return."""
    env = gym.make(env_id)
    successes, violations, returns = [], [], []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, violated = 0.0, False
        while True:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            violated = violated or info["cost"] > 0
            if terminated or truncated:
                break
        successes.append(bool(info.get("is_success", False)))
        violations.append(violated)
        returns.append(total)
    return {"success": float(np.mean(successes)), "violation": float(np.mean(violations)), "return": float(np.mean(returns))}


BANDIT = dict(learning_rate=1e-3, batch_size=64, policy_kwargs=dict(net_arch=[32, 32]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bandit_reaches_the_constrained_optimum(seed):
    model = MetaSACLag("MlpPolicy", "SafeBandit-v0", seed=seed, **BANDIT)
    model.learn(3_000)
    action = float(model.predict(np.ones(1, np.float32), deterministic=True)[0][0])
    optimum = SafeBanditEnv().constrained_optimum
    assert abs(action - optimum) <= 0.1, f"deterministic action {action:.3f}, optimum {optimum}"
    assert evaluate(model, "SafeBandit-v0", 100)["violation"] <= 0.05


NAVIGATION = dict(policy_kwargs=dict(net_arch=[64, 64]))


@pytest.mark.slow
def test_navigation_reaches_goal_safely_and_compare_with_sac(capsys):
    model = MetaSACLag("MlpPolicy", "SafeNavigation2D-v0", seed=0, **NAVIGATION)
    model.learn(50_000)
    ours = evaluate(model, "SafeNavigation2D-v0", 50)
    sac = SAC("MlpPolicy", "SafeNavigation2D-v0", seed=0, **NAVIGATION)
    sac.learn(50_000)
    stock = evaluate(sac, "SafeNavigation2D-v0", 50)
    with capsys.disabled():
        print(f"\nSafeNavigation2D-v0, 50,000 steps: MetaSACLag {ours}; stock SB3 SAC {stock}")
    assert ours["success"] >= 0.8
    assert ours["violation"] <= 0.1
