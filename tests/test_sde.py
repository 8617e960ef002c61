"""gSDE (use_sde=True) in SACLag and RCPOSAC: the exploration noise is handled as SB3's SAC handles it."""

from __future__ import annotations

import glob

import numpy as np
import pytest
import yaml
from stable_baselines3 import SAC

from sb3_metasaclag import RCPOSAC, MetaSACLag, RCPOMetaSAC, SACLag
from sb3_metasaclag.common.wrappers import CostMonitor
from tests.test_zoo import assert_ok, run

SDE = dict(use_sde=True, sde_sample_freq=3, learning_starts=40, batch_size=16, gradient_steps=2, train_freq=4)
SMALL = dict(policy_kwargs=dict(net_arch=[16]), seed=0)


def _small() -> dict:
    """SMALL with a fresh policy_kwargs: SB3's SAC writes use_sde into the dict it is given."""
    return dict(SMALL, policy_kwargs=dict(SMALL["policy_kwargs"]))


def _reset_noise_calls(model) -> list[tuple[int, int]]:
    """Record ``(num_timesteps, n_envs)`` at each call of the actor's ``reset_noise``."""
    calls: list[tuple[int, int]] = []
    original = model.actor.reset_noise

    def spy(batch_size: int = 1) -> None:
        calls.append((model.num_timesteps, batch_size))
        original(batch_size)

    model.actor.reset_noise = spy
    return calls


@pytest.mark.parametrize("model_class", [SACLag, RCPOSAC])
@pytest.mark.parametrize("use_sde_at_warmup", [False, True])
def test_noise_is_reset_where_sac_resets_it(model_class, use_sde_at_warmup):
    import gymnasium as gym

    env = CostMonitor(gym.make("SafeNavigation2D-v0"))
    sac = SAC("MlpPolicy", env, use_sde_at_warmup=use_sde_at_warmup, **SDE, **_small())
    ours = model_class("MlpPolicy", "SafeNavigation2D-v0", use_sde_at_warmup=use_sde_at_warmup, **SDE, **SMALL)
    sac_calls, our_calls = _reset_noise_calls(sac), _reset_noise_calls(ours)
    sac.learn(120)
    ours.learn(120)
    assert our_calls == sac_calls
    assert len(our_calls) > 30  # rollouts, every sde_sample_freq steps, and every gradient step


@pytest.mark.parametrize("model_class", [SACLag, RCPOSAC])
def test_sde_learns_saves_loads_and_predicts(model_class, tmp_path):
    model = model_class("MlpPolicy", "SafeNavigation2D-v0", **SDE, **SMALL)
    assert model.use_sde and model.actor.use_sde
    model.learn(200)
    observation = model.get_env().reset()
    noisy = [model.predict(observation)[0] for _ in range(2)]
    model.save(tmp_path / "model.zip")
    loaded = model_class.load(tmp_path / "model.zip")
    assert loaded.use_sde and loaded.sde_sample_freq == 3
    np.testing.assert_allclose(
        loaded.predict(observation, deterministic=True)[0], model.predict(observation, deterministic=True)[0], atol=1e-6
    )
    assert all(np.all(np.abs(action) <= 1) for action in noisy)
    loaded.set_env(model.get_env())
    loaded.learn(50, reset_num_timesteps=False)


@pytest.mark.parametrize("model_class", [MetaSACLag, RCPOMetaSAC])
def test_meta_variants_still_refuse_sde_with_the_reason(model_class):
    with pytest.raises(ValueError, match="meta-gradients are derived for SAC's squashed Gaussian"):
        model_class("MlpPolicy", "SafeBandit-v0", use_sde=True)


def test_rl_zoo_takes_use_sde_from_yaml(tmp_path):
    config = {
        "SafeNavigation2D-v0": dict(
            n_timesteps=200, policy="MlpPolicy", learning_starts=50, batch_size=32, use_sde=True, sde_sample_freq=4,
            policy_kwargs="dict(net_arch=[16])",
        )
    }  # fmt: skip
    (tmp_path / "saclag.yml").write_text(yaml.safe_dump(config))
    train = ["-m", "rl_zoo3.train", "--algo", "saclag", "--env", "SafeNavigation2D-v0", "-f", "logs", "--seed", "0"]
    result = run([*train, "-conf", "saclag.yml", "--num-threads", "1"], tmp_path)
    assert_ok(result)
    (path,) = glob.glob(str(tmp_path / "logs" / "saclag" / "SafeNavigation2D-v0_1" / "SafeNavigation2D-v0.zip"))
    model = SACLag.load(path)
    assert model.use_sde and model.sde_sample_freq == 4 and model.num_timesteps == 200


@pytest.mark.parametrize("model_class", [SACLag, RCPOSAC, MetaSACLag, RCPOMetaSAC])
def test_tau_zero_and_one_are_accepted_as_in_sac(model_class):
    frozen = model_class("MlpPolicy", "SafeBandit-v0", tau=0.0, learning_starts=20, batch_size=8, **SMALL)
    before = [p.detach().clone() for p in frozen.critic_target.parameters()]
    frozen.learn(40)
    assert all(np.array_equal(a.numpy(), b.detach().numpy()) for a, b in zip(before, frozen.critic_target.parameters()))
    copied = model_class("MlpPolicy", "SafeBandit-v0", tau=1.0, learning_starts=20, batch_size=8, **SMALL)
    copied.learn(40)
    for source, target in zip(copied.critic.parameters(), copied.critic_target.parameters()):
        np.testing.assert_allclose(source.detach().numpy(), target.detach().numpy())
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="tau"):
            model_class("MlpPolicy", "SafeBandit-v0", tau=bad)


def test_a_shared_policy_kwargs_dict_is_not_changed():
    # SB3 writes use_sde into the policy_kwargs it is given; a dict shared with a MetaSACLag must not carry it over.
    shared = dict(net_arch=[16])
    SACLag("MlpPolicy", "SafeBandit-v0", use_sde=True, policy_kwargs=shared)
    assert shared == dict(net_arch=[16])
    assert not MetaSACLag("MlpPolicy", "SafeBandit-v0", policy_kwargs=shared).actor.use_sde
    with pytest.raises(ValueError, match="does not support gSDE"):
        MetaSACLag("MlpPolicy", "SafeBandit-v0", policy_kwargs=dict(net_arch=[16], use_sde=True))
