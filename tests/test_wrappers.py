"""Cost-signal conventions: wrappers and error messages."""

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from sb3_metasaclag import MetaSACLag, SACLag
from sb3_metasaclag.common.costs import MissingCostError, get_cost, is_violation
from sb3_metasaclag.common.wrappers import CostFunction, CostMonitor, HardConstraint, SafetyGymnasiumToGymnasium


class ScriptedCostEnv(gym.Env):
    """Emits a fixed sequence of costs; episodes last ``len(costs)`` steps."""

    observation_space = spaces.Box(-1, 1, (1,), np.float32)
    action_space = spaces.Box(-1, 1, (1,), np.float32)

    def __init__(self, costs: list[Any], with_cost: bool = True, six_tuple: bool = False):
        self.costs, self.with_cost, self.six_tuple = costs, with_cost, six_tuple
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        cost = self.costs[self.t]
        self.t += 1
        done = self.t >= len(self.costs)
        if self.six_tuple:
            return np.zeros(1, np.float32), 1.0, cost, done, False, {}
        return np.zeros(1, np.float32), 1.0, done, False, ({"cost": cost} if self.with_cost else {})


def run_episode(env):
    env.reset()
    infos = []
    while True:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        infos.append(info)
        if terminated or truncated:
            return infos


def test_hard_constraint_terminates_at_first_violation():
    env = HardConstraint(ScriptedCostEnv([0.0, 0.0, 2.0, 0.0, 1.0]))
    infos = run_episode(env)
    assert len(infos) == 3
    assert [info["constraint_violated"] for info in infos] == [False, False, True]


def test_hard_constraint_threshold():
    env = HardConstraint(ScriptedCostEnv([0.5, 0.5, 2.0, 0.0]), violation_threshold=1.0)
    assert len(run_episode(env)) == 3


def test_cost_monitor_episode_info_and_csv(tmp_path):
    env = CostMonitor(ScriptedCostEnv([0.0, 0.5, 0.0, 2.0]), filename=str(tmp_path / "run"))
    infos = run_episode(env)
    episode = infos[-1]["episode"]
    assert episode["r"] == 4.0 and episode["l"] == 4
    assert episode["c"] == pytest.approx(2.5) and episode["v"] == 2
    assert all("c" not in info and "v" not in info for info in infos)
    run_episode(env)
    env.close()
    lines = (tmp_path / "run.monitor.csv").read_text().splitlines()
    assert lines[1].split(",")[:5] == ["r", "l", "t", "c", "v"]
    assert len(lines) == 4 and lines[2].split(",")[3:5] == ["2.5", "2"]


def test_cost_monitor_is_a_monitor_for_sb3():
    from stable_baselines3.common.env_util import is_wrapped
    from stable_baselines3.common.monitor import Monitor

    assert is_wrapped(CostMonitor(ScriptedCostEnv([0.0])), Monitor)


def test_six_tuple_conversion():
    env = SafetyGymnasiumToGymnasium(ScriptedCostEnv([0.0, 3.0], six_tuple=True))
    env.reset()
    result = env.step(env.action_space.sample())
    assert len(result) == 5 and result[-1]["cost"] == 0.0
    assert env.step(env.action_space.sample())[-1]["cost"] == 3.0


def test_six_tuple_wrapper_rejects_five_tuple():
    env = SafetyGymnasiumToGymnasium(ScriptedCostEnv([0.0]))
    env.reset()
    with pytest.raises(ValueError, match="got a tuple of 5 values"):
        env.step(env.action_space.sample())


@pytest.mark.parametrize("wrapper", [HardConstraint, CostMonitor])
def test_missing_cost_fails_at_first_step_with_advice(wrapper):
    env = wrapper(ScriptedCostEnv([0.0, 0.0], with_cost=False))
    env.reset()
    with pytest.raises(MissingCostError, match=r"no 'cost' entry.*info\['cost'\].*SafetyGymnasiumToGymnasium"):
        env.step(env.action_space.sample())


@pytest.mark.parametrize(
    "bad, message",
    [
        (float("nan"), "finite, got nan"),
        (float("inf"), "finite, got inf"),
        (-0.5, ">= 0, got -0.5"),
        ("x", "real number"),
        ("1", "real number .* type str"),
        (True, "real number .* type bool"),
        (np.array([1.0]), r"real number .* ndarray of shape \(1,\)"),
        (1e39, "fit in float32"),
    ],
)
@pytest.mark.parametrize("wrapper", [HardConstraint, CostMonitor])
def test_bad_costs_rejected_with_value(wrapper, bad, message):
    env = wrapper(ScriptedCostEnv([bad]))
    env.reset()
    with pytest.raises(ValueError, match=message):
        env.step(env.action_space.sample())


def test_get_cost_accepts_numpy_scalars():
    assert get_cost({"cost": np.float32(1.5)}) == 1.5
    assert get_cost({"cost": np.array(2.0)}) == 2.0


def test_missing_cost_names_the_environment_and_the_wrappers_that_add_one():
    from sb3_metasaclag import MetaSACLag

    with pytest.raises(MissingCostError, match=r"step info of Pendulum-v1 has no 'cost' entry.*CostFunction.*ZeroCost"):
        MetaSACLag("MlpPolicy", "Pendulum-v1", learning_starts=10).learn(5)


def test_cost_function_and_zero_cost_make_any_env_usable():
    from sb3_metasaclag import SACLag
    from sb3_metasaclag.common.wrappers import CostFunction, ZeroCost

    seen = []

    def cost_fn(obs, action, next_obs, info):
        seen.append((obs.copy(), next_obs.copy()))
        return float(abs(next_obs[2]) > 1.0)  # angular velocity above 1 rad/s

    env = CostFunction(gym.make("Pendulum-v1"), cost_fn)
    obs, _ = env.reset(seed=0)
    next_obs, _, _, _, info = env.step(np.array([2.0], dtype=np.float32))
    assert info["cost"] == float(abs(next_obs[2]) > 1.0)
    np.testing.assert_array_equal(seen[0][0], obs)  # the observation before the step
    np.testing.assert_array_equal(seen[0][1], next_obs)
    model = SACLag("MlpPolicy", CostMonitor(env), learning_starts=20, batch_size=16, policy_kwargs=dict(net_arch=[8]))
    model.learn(220)  # one whole 200-step episode
    assert model.ep_cost_buffer and model.ep_cost_buffer[0][1] == sum(
        c > 0 for c in [float(abs(n[2]) > 1.0) for _, n in seen[1:201]]
    )
    zero = ZeroCost(gym.make("Pendulum-v1"))
    zero.reset(seed=0)
    assert zero.step(zero.action_space.sample())[4]["cost"] == 0.0
    with pytest.raises(ValueError, match=r">= 0, got -1.0"):
        bad = CostFunction(gym.make("Pendulum-v1"), lambda *args: -1.0)
        bad.reset(seed=0)
        bad.step(bad.action_space.sample())
    with pytest.raises(TypeError, match="cost_fn must be callable"):
        CostFunction(gym.make("Pendulum-v1"), 1.0)


@pytest.mark.parametrize("algorithm", [MetaSACLag, SACLag])
def test_the_monitor_the_algorithm_makes_counts_with_its_violation_threshold(algorithm):
    # Every step costs 0.3: a violation at the default threshold 0, none at 0.5.
    def make():
        return CostFunction(gym.make("Pendulum-v1", max_episode_steps=20), lambda obs, action, next_obs, info: 0.3)

    counts = {}
    for threshold in (0.0, 0.5):
        model = algorithm(
            "MlpPolicy", make(), violation_threshold=threshold, learning_starts=100, policy_kwargs=dict(net_arch=[8])
        )
        model.learn(40)
        counts[threshold] = [info["v"] for info in model.ep_info_buffer]
    assert counts == {0.0: [20, 20], 0.5: [0, 0]}
    # A CostMonitor the user made keeps the threshold it was given.
    own = CostMonitor(make(), violation_threshold=0.1)
    model = algorithm("MlpPolicy", own, violation_threshold=0.5, learning_starts=100, policy_kwargs=dict(net_arch=[8]))
    with pytest.warns(UserWarning, match="Give both the same threshold"):
        model.learn(20)
    assert own.violation_threshold == 0.1 and [info["v"] for info in model.ep_info_buffer] == [20]


def test_evaluation_counts_violations_with_the_models_threshold():
    from sb3_metasaclag.common.evaluation import evaluate_safe_policy

    env = CostFunction(gym.make("Pendulum-v1", max_episode_steps=5), lambda obs, action, next_obs, info: 0.3)
    model = SACLag("MlpPolicy", env, violation_threshold=0.5, policy_kwargs=dict(net_arch=[8]))
    assert evaluate_safe_policy(model, env, 2)["violation"] == 0.0  # the model's threshold, 0.5
    assert evaluate_safe_policy(model, env, 2, violation_threshold=0.0)["violation"] == 1.0
    assert evaluate_safe_policy(model, env, 2)["cost"] == pytest.approx(1.5)


def test_evaluation_on_a_vec_env_matches_the_plain_env():
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_metasaclag.common.evaluation import evaluate_safe_policy

    class Scripted:
        """Action 1 everywhere: on the bandit, a reward of 1 and a violation in every episode of one step."""

        def predict(self, obs, deterministic=True):
            return np.ones((len(obs), 1), np.float32) if np.ndim(obs) == 2 else np.ones(1, np.float32), None

    plain = evaluate_safe_policy(Scripted(), "SafeBandit-v0", 6)
    vec = evaluate_safe_policy(Scripted(), make_vec_env("SafeBandit-v0", n_envs=3), 6)
    assert vec == pytest.approx(plain, nan_ok=True)
    assert vec["violation"] == 1.0


def test_is_violation_is_cost_above_the_threshold():
    assert is_violation(0.3) and not is_violation(0.0) and not is_violation(0.5, 0.5) and is_violation(0.6, 0.5)
    np.testing.assert_array_equal(is_violation(np.array([0.0, 0.3, 0.5, 0.7]), 0.3), [False, False, True, True])


def _random_cost_env(steps: int = 20):
    """Pendulum whose cost is |torque| / 2, in [0, 1]: a violation threshold of 0.5 splits the steps."""
    return CostFunction(
        gym.make("Pendulum-v1", max_episode_steps=steps), lambda obs, action, next_obs, info: float(abs(action[0])) / 2
    )


@pytest.mark.parametrize("vec", [False, True])
def test_one_violation_threshold_reaches_monitor_buffer_training_and_evaluation(vec):
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_metasaclag.common.evaluation import evaluate_safe_policy

    threshold = 0.5
    # A plain env gets the algorithm's CostMonitor; a VecEnv built by the user (plain SB3 Monitors) a VecCostMonitor.
    env = make_vec_env(_random_cost_env, n_envs=2, seed=0) if vec else _random_cost_env()
    model = SACLag("MlpPolicy", env, violation_threshold=threshold, learning_starts=30, batch_size=16, seed=0,
                   policy_kwargs=dict(net_arch=[8]))  # fmt: skip
    model.learn(80)  # 4 episodes of 20 steps in all, learning from step 30
    buffer = model.replay_buffer
    stored = buffer.costs[: buffer.pos].ravel()
    assert 0 < np.count_nonzero(stored > threshold) < stored.size  # both kinds of step occur
    # Buffer: D_s holds exactly the steps above the threshold.
    assert buffer.n_violating == buffer.safety.size() == np.count_nonzero(stored > threshold)
    # Monitor: the episode records count the same steps (every stored step belongs to a finished episode).
    assert sum(count for _, count in model.ep_cost_buffer) == np.count_nonzero(stored > threshold)
    assert sum(cost for cost, _ in model.ep_cost_buffer) == pytest.approx(stored.sum(), abs=1e-4)
    # Training: the indicator c of a sampled batch is cost > threshold.
    batch = buffer.sample(64)
    np.testing.assert_array_equal(batch.violations.numpy().ravel(), (batch.costs.numpy().ravel() > threshold))
    # Evaluation: the model's threshold, checked against a rollout of the same episodes.
    summary = evaluate_safe_policy(model, _random_cost_env(), 3, seed=7)
    probe, violated = _random_cost_env(), []
    for episode in range(3):
        obs, _ = probe.reset(seed=7 + episode)
        flags, done = [], False
        while not done:
            obs, _, terminated, truncated, info = probe.step(model.predict(obs, deterministic=True)[0])
            flags.append(info["cost"] > threshold)
            done = terminated or truncated
        violated.append(any(flags))
    assert summary["violation"] == pytest.approx(np.mean(violated))


def test_a_users_vec_env_without_cost_monitor_still_records_episode_costs():
    from stable_baselines3.common.vec_env import DummyVecEnv

    from sb3_metasaclag.common.callbacks import SafetyHistoryCallback
    from sb3_metasaclag.common.wrappers import VecCostMonitor

    history = SafetyHistoryCallback()
    # No Monitor at all: VecCostMonitor writes r, l and t as well.
    env = DummyVecEnv([_random_cost_env, _random_cost_env])
    model = MetaSACLag("MlpPolicy", env, learning_starts=100, policy_kwargs=dict(net_arch=[8]), seed=0)
    assert isinstance(model.get_env(), VecCostMonitor)
    model.learn(120, callback=history)  # 60 steps of each env: 3 episodes each
    assert len(history.history["cost"]) == 6 and set(history.history) >= {"return", "violations"}
    assert [info["l"] for info in model.ep_info_buffer] == [20] * 6
    assert history.history["violations"] == [float(v) for _, v in model.ep_cost_buffer]
    # A model given its own env back does not wrap it twice.
    model.set_env(model.get_env())
    assert isinstance(model.get_env(), VecCostMonitor) and not isinstance(model.get_env().venv, VecCostMonitor)


def test_a_user_cost_monitor_with_another_threshold_is_reported():
    model = SACLag("MlpPolicy", CostMonitor(_random_cost_env(), violation_threshold=0.1), violation_threshold=0.5,
                   learning_starts=100, policy_kwargs=dict(net_arch=[8]))  # fmt: skip
    with pytest.warns(UserWarning, match=r"counts violations above \[0.1\].*violation_threshold=0.5"):
        model.learn(20)
    from stable_baselines3.common.vec_env import DummyVecEnv

    from sb3_metasaclag.common.wrappers import VecCostMonitor

    own = VecCostMonitor(DummyVecEnv([_random_cost_env]), violation_threshold=0.1)
    model = SACLag("MlpPolicy", own, violation_threshold=0.5, learning_starts=100, policy_kwargs=dict(net_arch=[8]))
    assert model.get_env() is own  # not wrapped twice
    with pytest.warns(UserWarning, match=r"counts violations above \[0.1\]"):
        model.learn(20)
    assert own.violation_threshold == 0.1
