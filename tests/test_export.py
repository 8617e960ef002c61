"""Policy export for deployment: ONNX and TorchScript reproduce predict(deterministic=True)."""

import numpy as np
import onnxruntime
import pytest
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from sb3_metasaclag import RCPOSAC, MetaSACLag, RCPOMetaSAC, SACLag, export_policy

SMALL = dict(learning_starts=50, batch_size=32, policy_kwargs=dict(net_arch=[16, 16]))


def _exported_actions(path, format, observations):
    if format == "onnx":
        session = onnxruntime.InferenceSession(str(path))
        return session.run(None, {"observation": observations})[0]
    module = th.jit.load(str(path))
    with th.no_grad():
        return module(th.as_tensor(observations)).numpy()


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
@pytest.mark.parametrize("model_class", [MetaSACLag, SACLag, RCPOSAC, RCPOMetaSAC, SAC])
def test_exported_policy_acts_like_predict(tmp_path, model_class, format):
    kwargs = {**SMALL} if model_class is SAC else {**SMALL, "n_initial_states": 4, "initial_state_batch_size": 8}
    env = "SafeCircleSoft-v0"  # actions in [-1, 1] x [-1, 1]; the bandit below checks scaling to other bounds
    model = model_class("MlpPolicy", env, seed=0, **kwargs)
    model.learn(120)
    path = export_policy(model, tmp_path / f"policy.{format}", format=format)
    rng = np.random.default_rng(0)
    observations = rng.uniform(-3, 3, size=(64, *model.observation_space.shape)).astype(np.float32)
    expected, _ = model.predict(observations, deterministic=True)
    np.testing.assert_allclose(_exported_actions(path, format, observations), expected, atol=1e-5)


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_export_scales_to_the_action_bounds_and_builds_in_vec_normalize(tmp_path, format):
    import gymnasium as gym

    from sb3_metasaclag.common.wrappers import CostFunction

    # Pendulum's actions lie in [-2, 2]; its observations are normalised by VecNormalize during training.
    venv = VecNormalize(make_vec_env(lambda: CostFunction(gym.make("Pendulum-v1"), lambda *args: 0.0), n_envs=1))
    model = SACLag("MlpPolicy", venv, seed=0, **SMALL)
    model.learn(120)
    with th.no_grad():
        model.policy.actor.mu.bias.fill_(2.0)  # tanh(mean) near 0.96 for most observations: actions near 1.9
    path = export_policy(model, tmp_path / f"policy.{format}", format=format)
    raw = np.random.default_rng(1).uniform(-1, 1, size=(32, 3)).astype(np.float32)
    expected, _ = model.predict(venv.normalize_obs(raw), deterministic=True)
    assert np.abs(expected).max() > 1.0  # scaled beyond [-1, 1]
    np.testing.assert_allclose(_exported_actions(path, format, raw), expected, atol=1e-5)


def test_export_refuses_what_it_cannot_export(tmp_path):
    model = MetaSACLag("MlpPolicy", "SafeCircleSoft-v0", **SMALL)
    with pytest.raises(ValueError, match="format must be one of"):
        export_policy(model, tmp_path / "policy.x", format="tflite")
    dict_model = MetaSACLag("MultiInputPolicy", make_vec_env("SafeNavigation2D-v0", env_kwargs=dict(dict_observations=True)))
    with pytest.raises(ValueError, match="flat Box observations"):
        export_policy(dict_model, tmp_path / "policy.onnx")
