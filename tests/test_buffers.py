"""The constraint-aware buffer: SB3's store with costs, D_s and D_0 beside it, sampling, and persistence."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from helpers import MarkedEnv
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_metasaclag import MetaSACLag
from sb3_metasaclag.common.buffers import ConstraintDictReplayBuffer, ConstraintReplayBuffer
from sb3_metasaclag.common.costs import MissingCostError


def _rows(array):
    return {tuple(row) for row in np.asarray(array).reshape(len(array), -1)}


@pytest.mark.parametrize("n_envs", [1, 4])
@pytest.mark.parametrize("dict_observations", [False, True])
def test_routing_through_the_algorithm(n_envs, dict_observations):
    envs = [MarkedEnv(rank, dict_observations) for rank in range(n_envs)]
    vec_env = DummyVecEnv([lambda e=e: e for e in envs])
    policy = "MultiInputPolicy" if dict_observations else "MlpPolicy"
    model = MetaSACLag(policy, vec_env, learning_starts=10_000, n_initial_states=8, policy_kwargs=dict(net_arch=[8]), seed=0)
    model.learn(300)
    buffer = model.replay_buffer

    def stored(store, size):
        data = store.data["marks"] if dict_observations else store.data
        return data[:size]

    expected_class = ConstraintDictReplayBuffer if dict_observations else ConstraintReplayBuffer
    assert type(buffer) is expected_class
    violating = [obs for env in envs for obs, cost in env.transitions if cost > 0]
    every = [obs for env in envs for obs, _ in env.transitions]
    assert buffer.safety.size() == len(violating) > 0 and buffer.n_violating == len(violating)
    assert buffer.size() * n_envs == buffer.n_transitions() == len(every) == 300
    assert buffer.non_violating_size() == len(every) - len(violating)
    # SB3's layout: row = step, column = env; each marked observation is unique, so the sets match exactly.
    store = buffer.observations["marks"] if dict_observations else buffer.observations
    assert _rows(store[: buffer.size()].reshape(-1, store.shape[-1])) == _rows(every)
    assert _rows(stored(buffer.safety.observations, buffer.safety.size())) == _rows(violating)
    assert np.all(buffer.safety.costs[: buffer.safety.size()] > 0)
    costs = {tuple(obs): cost for env in envs for obs, cost in env.transitions}
    rows = store[: buffer.size()]
    for step in range(buffer.size()):
        for env_index in range(n_envs):
            assert buffer.costs[step, env_index] == costs[tuple(rows[step, env_index])]
    # D_0: every reset observation (pre-fill, first reset, and each episode start after an auto-reset).
    resets = [obs for env in envs for obs in env.reset_observations]
    assert buffer.initial_states.size() == len(resets)
    assert _rows(stored(buffer.initial_states.observations, buffer.initial_states.size())) == _rows(resets)
    assert all(obs[1] == 0 for obs in resets)


def test_violation_threshold_routes_by_cost_level():
    env = DummyVecEnv([lambda: MarkedEnv(cost_value=0.5)])
    model = MetaSACLag("MlpPolicy", env, learning_starts=10_000, violation_threshold=1.0, n_initial_states=0, seed=0)
    model.learn(100)
    assert model.replay_buffer.safety.size() == 0 and model.replay_buffer.non_violating_size() == 100
    assert set(np.unique(model.replay_buffer.costs[:100]).tolist()) == {0.0, 0.5}  # costs kept, none violates


def _buffer(n_envs=2, **kwargs):
    space = spaces.Box(-1, 1, (3,), np.float32)
    return ConstraintReplayBuffer(100, space, spaces.Box(-1, 1, (2,), np.float32), "cpu", n_envs=n_envs, **kwargs)


def test_bad_input_never_corrupts_the_buffer():
    buffer = _buffer()
    obs, action = np.zeros((2, 3), np.float32), np.zeros((2, 2), np.float32)
    buffer.add(obs, obs, action, np.array([1.0, 2.0]), np.array([False, False]), [{"cost": 0.0}, {"cost": 1.0}])
    before = (buffer.size(), buffer.safety.size(), buffer.n_violating, buffer.rewards.copy(), buffer.costs.copy())
    with pytest.raises(ValueError, match="finite"):
        buffer.add(obs, obs, action, np.array([np.nan, 1.0]), np.array([False, False]), [{"cost": 0.0}, {"cost": 0.0}])
    with pytest.raises(ValueError, match=r">= 0, got -1.0"):
        buffer.add(obs, obs, action, np.ones(2), np.array([False, False]), [{"cost": 0.0}, {"cost": -1.0}])
    with pytest.raises(MissingCostError, match="no 'cost' entry"):
        buffer.add(obs, obs, action, np.ones(2), np.array([False, False]), [{"cost": 0.0}, {}])
    assert (buffer.size(), buffer.safety.size(), buffer.n_violating) == before[:3]
    np.testing.assert_array_equal(buffer.rewards, before[3])
    np.testing.assert_array_equal(buffer.costs, before[4])


def test_timeouts_are_not_terminal_and_samples_carry_costs():
    buffer = _buffer()
    obs, action = np.zeros((2, 3), np.float32), np.zeros((2, 2), np.float32)
    infos = [{"cost": 0.0, "TimeLimit.truncated": True}, {"cost": 0.0}]
    buffer.add(obs, obs, action, np.ones(2), np.array([True, True]), infos)
    assert buffer.timeouts[0].tolist() == [1.0, 0.0] and buffer.safety.size() == 0
    assert buffer.sample(50).dones.flatten().tolist().count(0.0) > 0  # the timeout's transition is not terminal
    buffer.add(obs, obs, action, np.ones(2), np.array([False, False]), [{"cost": 2.0}, {"cost": 3.0}])
    batch = buffer.sample(200)
    assert set(batch.costs.flatten().tolist()) == {0.0, 2.0, 3.0}
    assert th.equal(batch.violations, (batch.costs > 0).float())
    assert set(buffer.sample_non_violating(50).costs.flatten().tolist()) == {0.0}
    assert buffer.safety.dones[:2].tolist() == [0.0, 0.0] and buffer.safety.costs[:2].tolist() == [2.0, 3.0]


def test_circular_overwrite_keeps_old_violations_in_d_s():
    buffer = _buffer(n_envs=1)
    for i in range(250):
        obs = np.full((1, 3), i, np.float32)
        cost = 1.0 if i % 10 == 0 else 0.0  # steps 0, 10, ..., 240 violate
        buffer.add(obs, obs, np.zeros((1, 2), np.float32), np.ones(1), np.array([False]), [{"cost": cost}])
    assert buffer.size() == 100 and buffer.full
    assert set(buffer.observations[:, 0, 0].tolist()) == set(range(150, 250))
    assert buffer.n_violating == 10 and buffer.non_violating_size() == 90  # 150, 160, ..., 240
    assert buffer.safety.size() == 25
    # The violations of steps 0-140 are no longer in the store: sample() reads them from D_s, and only them.
    assert sorted(buffer.safety.observations.data[buffer._evicted_violations(), 0].tolist()) == list(range(0, 150, 10))
    observed = buffer.sample(20_000).observations[:, 0].numpy()
    expected = set(range(150, 250)) | set(range(0, 150, 10))
    assert set(observed.tolist()) == expected
    # Uniform over the 115 transitions kept: each one about 20,000 / 115 = 174 times.
    counts = np.unique(observed, return_counts=True)[1]
    assert counts.min() > 110 and counts.max() < 250
    assert set(buffer.sample_non_violating(2_000).observations[:, 0].numpy().tolist()) == {
        i for i in range(150, 250) if i % 10
    }


def test_empty_buffers_raise_clear_errors():
    buffer = _buffer()
    with pytest.raises(RuntimeError, match="replay buffer is empty"):
        buffer.sample(4)
    with pytest.raises(RuntimeError, match="No non-violating transition"):
        buffer.sample_non_violating(4)
    with pytest.raises(RuntimeError, match="D_0 is empty"):
        buffer.sample_initial_states(4)
    with pytest.raises(ValueError, match="optimize_memory_usage"):
        _buffer(optimize_memory_usage=True)
    with pytest.raises(ValueError, match="Dict observation space"):
        ConstraintDictReplayBuffer(10, spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)), "cpu")
    with pytest.raises(ValueError, match="need ConstraintDictReplayBuffer"):
        ConstraintReplayBuffer(10, spaces.Dict({"a": spaces.Box(-1, 1, (3,))}), spaces.Box(-1, 1, (2,)), "cpu")


def test_save_and_load_replay_buffer_round_trip(tmp_path):
    env = DummyVecEnv([lambda: MarkedEnv()])
    model = MetaSACLag("MlpPolicy", env, learning_starts=10_000, n_initial_states=4, seed=0)
    model.learn(120)
    model.save_replay_buffer(tmp_path / "buffer")
    other = MetaSACLag("MlpPolicy", env, learning_starts=10_000, seed=1)
    other.load_replay_buffer(tmp_path / "buffer")
    for name in ("safety", "initial_states"):
        a, b = getattr(model.replay_buffer, name), getattr(other.replay_buffer, name)
        assert a.size() == b.size() > 0
        np.testing.assert_array_equal(a.observations.data, b.observations.data)
    assert other.replay_buffer.size() == model.replay_buffer.size() == 120
    for name in ("observations", "next_observations", "actions", "rewards", "costs", "dones", "timeouts"):
        np.testing.assert_array_equal(getattr(model.replay_buffer, name), getattr(other.replay_buffer, name))
    np.testing.assert_array_equal(model.replay_buffer.safety.costs, other.replay_buffer.safety.costs)
    from stable_baselines3.common.save_util import save_to_pkl

    save_to_pkl(tmp_path / "not_ours", {"a": 1})
    with pytest.raises(TypeError, match="ConstraintReplayBuffer"):
        other.load_replay_buffer(tmp_path / "not_ours")


def test_float64_action_spaces_sample_float32():
    space = spaces.Box(-1, 1, (3,), np.float64)
    buffer = ConstraintReplayBuffer(10, space, spaces.Box(-1, 1, (2,), np.float64), "cpu", n_envs=1)
    obs = np.zeros((1, 3))
    buffer.add(obs, obs, np.ones((1, 2)), np.ones(1), np.array([False]), [{"cost": 0.0}])
    assert buffer.sample(4).actions.dtype == th.float32
