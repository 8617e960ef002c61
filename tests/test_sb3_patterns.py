"""SB3 2.9's own usage patterns (its tests/test_save_load.py and tests/test_run.py), run on every algorithm of the
package: what a SAC user's code does, unchanged but for the class name."""

import os

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_metasaclag import RCPOSAC, MetaSACLag, RCPOMetaSAC, SACLag
from sb3_metasaclag.common.wrappers import CostMonitor

MODEL_LIST = [MetaSACLag, SACLag, RCPOSAC, RCPOMetaSAC]
SMALL = dict(
    learning_starts=50, batch_size=32, n_initial_states=8, initial_state_batch_size=8, policy_kwargs=dict(net_arch=[16])
)
ENV_ID = "SafeNavigation2DSoft-v0"


def _parameters(model):
    return {key: value.clone() for key, value in model.policy.state_dict().items()}


@pytest.mark.parametrize("model_class", MODEL_LIST)
def test_save_load_parameters_env_and_replay_buffer(tmp_path, model_class):
    env = make_vec_env(ENV_ID, n_envs=2, seed=0)
    model = model_class("MlpPolicy", env, seed=0, **SMALL)
    model.learn(150)
    params = _parameters(model)
    observations = env.reset()
    actions = model.predict(observations, deterministic=True)[0]
    stored = model.replay_buffer.size()
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer")
    del model

    # load with an env, without, onto a device, with custom_objects, then set_env: as SB3's tests do.
    loaded = model_class.load(tmp_path / "model.zip", env=env, device="cpu")
    assert all(th.equal(params[key], value) for key, value in loaded.policy.state_dict().items())
    np.testing.assert_array_equal(loaded.predict(observations, deterministic=True)[0], actions)
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    assert loaded.replay_buffer.size() == stored == 75  # as in SB3: steps of the 2-env VecEnv
    loaded.learn(60, reset_num_timesteps=False)
    assert loaded.num_timesteps == 210
    bare = model_class.load(tmp_path / "model", custom_objects={"learning_rate": 1e-4})
    assert bare.get_env() is None and bare.learning_rate == 1e-4
    bare.set_env(make_vec_env(ENV_ID, n_envs=2, seed=1))
    bare.learn(20)
    # set_parameters / get_parameters round trip (SB3's API for weights only)
    weights = loaded.get_parameters()
    bare.set_parameters(weights, exact_match=True)
    expected = loaded.predict(observations, deterministic=True)[0]
    np.testing.assert_array_equal(bare.predict(observations, deterministic=True)[0], expected)


@pytest.mark.parametrize("model_class", MODEL_LIST)
def test_the_replay_buffer_is_an_sb3_replay_buffer(tmp_path, model_class):
    from stable_baselines3 import SAC
    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.logger import configure

    env = make_vec_env(ENV_ID, n_envs=2, seed=0)
    model = model_class("MlpPolicy", env, seed=0, buffer_size=1_000, **SMALL)
    model.learn(100)
    buffer = model.replay_buffer
    assert isinstance(buffer, ReplayBuffer)
    # SB3's attributes and layout: one row per step of the VecEnv, one column per env.
    assert buffer.observations.shape == (500, 2, *env.observation_space.shape) and buffer.pos == 50 and not buffer.full
    assert buffer.actions.shape == (500, 2, 2) and buffer.rewards.shape == buffer.dones.shape == buffer.timeouts.shape
    assert buffer.costs.shape == (500, 2)
    batch = buffer.sample(16, env=None)  # SB3's signature
    assert batch.observations.shape == (16, *env.observation_space.shape) and batch.rewards.shape == (16, 1)
    # SB3's own code reads it: stock SAC trains on it and saves / loads it.
    sac = SAC("MlpPolicy", env, batch_size=16, policy_kwargs=dict(net_arch=[16]), seed=0)
    sac.set_logger(configure(None, ["csv"]))
    sac.replay_buffer = buffer
    before = [param.clone() for param in sac.critic.parameters()]
    sac.train(gradient_steps=3, batch_size=16)
    assert any(not th.equal(a, b) for a, b in zip(before, sac.critic.parameters()))
    sac.save_replay_buffer(tmp_path / "buffer")
    model.load_replay_buffer(tmp_path / "buffer")
    np.testing.assert_array_equal(model.replay_buffer.observations, buffer.observations)
    model.learn(20, reset_num_timesteps=False)  # and the algorithm carries on with it
    assert model.replay_buffer.pos == 60


@pytest.mark.parametrize("model_class", MODEL_LIST)
def test_predict_on_every_observation_shape(model_class):
    model = model_class("MlpPolicy", ENV_ID, seed=0, **SMALL)
    space = model.observation_space
    single = space.sample()
    action, state = model.predict(single)
    assert action.shape == model.action_space.shape and state is None
    batch = np.stack([space.sample() for _ in range(5)])
    assert model.predict(batch)[0].shape == (5, *model.action_space.shape)
    assert model.predict(single[None], deterministic=True)[0].shape == (1, *model.action_space.shape)
    with pytest.raises(ValueError):
        model.predict(np.zeros(space.shape[0] + 1, dtype=np.float32))
    dict_model = model_class("MultiInputPolicy", gym.make("SafeNavigation2D-v0", dict_observations=True), **SMALL)
    dict_obs = dict_model.observation_space.sample()
    assert dict_model.predict(dict_obs)[0].shape == dict_model.action_space.shape
    stacked = {key: np.stack([value] * 3) for key, value in dict_obs.items()}
    assert dict_model.predict(stacked)[0].shape == (3, *dict_model.action_space.shape)


@pytest.mark.parametrize("model_class", MODEL_LIST)
def test_callbacks_checkpoints_evaluation_and_tensorboard(tmp_path, model_class):
    env = make_vec_env(ENV_ID, n_envs=2, seed=0)
    eval_env = make_vec_env(ENV_ID, n_envs=1, seed=5, wrapper_class=CostMonitor)
    callbacks = CallbackList(
        [
            CheckpointCallback(50, str(tmp_path / "checkpoints"), save_replay_buffer=True),
            EvalCallback(eval_env, eval_freq=50, n_eval_episodes=1, log_path=str(tmp_path / "eval"), warn=False),
        ]
    )
    model = model_class("MlpPolicy", env, tensorboard_log=str(tmp_path / "tb"), seed=0, **SMALL)
    model.learn(200, callback=callbacks, tb_log_name="run")
    checkpoints = sorted(os.listdir(tmp_path / "checkpoints"))
    assert "rl_model_200_steps.zip" in checkpoints and "rl_model_replay_buffer_200_steps.pkl" in checkpoints
    resumed = model_class.load(tmp_path / "checkpoints" / "rl_model_200_steps.zip", env=env)
    resumed.load_replay_buffer(tmp_path / "checkpoints" / "rl_model_replay_buffer_200_steps.pkl")
    # SB3 calls the callbacks before it stores the step's transitions: its checkpoint misses the last step.
    assert resumed.replay_buffer.size() == model.replay_buffer.size() - 1
    resumed.learn(40, reset_num_timesteps=False)
    assert np.load(tmp_path / "eval" / "evaluations.npz")["timesteps"].tolist() == [100, 200]  # every 50 calls x 2 envs
    assert os.listdir(tmp_path / "tb")  # TensorBoard events written
    mean_reward, _ = evaluate_policy(model, eval_env, n_eval_episodes=2, warn=False)
    assert np.isfinite(mean_reward)


@pytest.mark.parametrize("model_class", MODEL_LIST)
def test_multi_env_and_vec_normalize(tmp_path, model_class):
    env = VecNormalize(make_vec_env(ENV_ID, n_envs=3, seed=0, vec_env_cls=DummyVecEnv), norm_reward=False)
    model = model_class("MlpPolicy", env, train_freq=2, gradient_steps=-1, seed=0, **SMALL)
    model.learn(150)
    assert model.num_timesteps == 150 and model.get_vec_normalize_env() is env
    model.save(tmp_path / "model")
    env.save(str(tmp_path / "vecnormalize.pkl"))
    restored = VecNormalize.load(str(tmp_path / "vecnormalize.pkl"), make_vec_env(ENV_ID, n_envs=3))
    loaded = model_class.load(tmp_path / "model", env=restored)
    loaded.learn(30, reset_num_timesteps=False)


class _ImageTask(gym.Env):
    """Images (channel last, uint8) whose brightness says where to move; moving right of 0.5 costs."""

    observation_space = gym.spaces.Box(0, 255, (36, 36, 3), dtype=np.uint8)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.t += 1
        cost = float(action[0] > 0.5)
        return self.observation_space.sample(), float(action[0]), False, self.t >= 10, {"cost": cost}


@pytest.mark.parametrize("model_class", MODEL_LIST)
def test_cnn_policy_on_image_observations(tmp_path, model_class):
    kwargs = {**SMALL, "policy_kwargs": dict(net_arch=[16], features_extractor_kwargs=dict(features_dim=32))}
    model = model_class("CnnPolicy", _ImageTask(), buffer_size=400, seed=0, **kwargs)
    assert type(model.policy).__name__ == "CnnPolicy"
    model.learn(80)  # SB3 puts the channel first (VecTransposeImage); the buffer keeps uint8 images
    assert model.replay_buffer.size() == 80 and model._n_updates > 0
    assert model.replay_buffer.observations.dtype == np.uint8
    observation = _ImageTask().observation_space.sample()
    action = model.predict(observation, deterministic=True)[0]
    model.save(tmp_path / "model")
    np.testing.assert_array_equal(model_class.load(tmp_path / "model").predict(observation, deterministic=True)[0], action)


@pytest.mark.parametrize("model_class", MODEL_LIST)
def test_save_load_continue_equals_an_uninterrupted_run_bit_for_bit(tmp_path, model_class):
    """With the model, its replay buffer, the same env (not reset) and the random states of Python, NumPy and torch
    carried over, a run split by save/load ends with exactly the parameters of an uninterrupted run (CPU)."""
    import random

    def env():
        return make_vec_env(ENV_ID, n_envs=1, seed=0)

    uninterrupted = model_class("MlpPolicy", env(), seed=0, **SMALL)
    uninterrupted.learn(300)
    training_env = env()
    first = model_class("MlpPolicy", training_env, seed=0, **SMALL)
    first.learn(163)  # mid-episode, and mid-interval of the averaged outer rule (113 updates)
    first.save(tmp_path / "model")
    first.save_replay_buffer(tmp_path / "buffer")
    states = random.getstate(), np.random.get_state(), th.get_rng_state()
    del first
    resumed = model_class.load(tmp_path / "model", env=training_env, force_reset=False)
    resumed.load_replay_buffer(tmp_path / "buffer")
    random.setstate(states[0])
    np.random.set_state(states[1])
    th.set_rng_state(states[2])
    resumed.learn(137, reset_num_timesteps=False)
    expected, actual = uninterrupted.policy.state_dict(), resumed.policy.state_dict()
    assert all(th.equal(expected[key], actual[key]) for key in expected)
    assert resumed.lagrangian.value == uninterrupted.lagrangian.value
    assert th.equal(resumed.epsilon, uninterrupted.epsilon) and th.equal(resumed.log_ent_coef, uninterrupted.log_ent_coef)
