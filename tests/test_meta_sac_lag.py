"""MetaSACLag as an SB3 algorithm: arguments, errors, logging, saving and loading."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from helpers import MarkedEnv
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

import sb3_metasaclag
from sb3_metasaclag import MetaSACLag, SACLag
from sb3_metasaclag.metasaclag.outer_rules import LOG_ALPHA_MIN

SMALL = dict(
    learning_starts=50, batch_size=32, n_initial_states=8, initial_state_batch_size=8, policy_kwargs=dict(net_arch=[16])
)


def _optimizers(model):
    return {
        "actor": model.actor.optimizer,
        "critic": model.critic.optimizer,
        "safety_critic": model.safety_critic.optimizer,
        "nu": model.lagrangian.optimizer,
        "epsilon": model.epsilon_optimizer,
        "alpha": model.ent_coef_optimizer,
    }


def _step_count(optimizer) -> int:
    return int(next(iter(optimizer.state.values()))["step"])


def _assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys() and sa["state"]
    for key in sa["state"]:
        for name, value in sa["state"][key].items():
            assert th.equal(th.as_tensor(value), th.as_tensor(sb["state"][key][name])), name


@pytest.mark.parametrize("outer_rule", ["averaged", "paper"])
def test_save_load_keeps_everything_and_training_continues(tmp_path, outer_rule):
    model = MetaSACLag("MlpPolicy", "SafeNavigation2D-v0", seed=0, outer_rule=outer_rule, **SMALL)
    model.learn(207)  # the averaged rule is then in the middle of an interval
    assert isinstance(model.actor.optimizer, th.optim.RMSprop)
    model.save(tmp_path / "agent")
    loaded = MetaSACLag.load(tmp_path / "agent", env=gym.make("SafeNavigation2D-v0"))

    obs = np.random.default_rng(0).uniform(-1, 1, (20, 6)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    for name in ("epsilon", "alpha", "nu"):
        assert th.equal(getattr(model, name), getattr(loaded, name)), name
    for name, optimizer in _optimizers(model).items():
        _assert_same_state(optimizer, _optimizers(loaded)[name])
    for a, b in zip(model.safety_critic.parameters(), loaded.safety_critic.parameters()):
        assert th.equal(a, b)
    assert loaded.epsilon_objective == model.epsilon_objective and loaded.gamma_c == model.gamma_c
    assert (loaded.outer_rule, loaded.meta_interval, loaded.nu_derivative) == (
        outer_rule,
        model.meta_interval,
        model.nu_derivative,
    )
    assert loaded._meta_count == model._meta_count and (outer_rule == "paper" or model._meta_count > 0)
    for key, value in model._meta_sums.items():
        assert th.equal(loaded._meta_sums[key], value), key

    values = {name: getattr(loaded, name).item() for name in ("alpha", "nu")}
    steps = {name: _step_count(optimizer) for name, optimizer in _optimizers(loaded).items()}
    outer_steps = 150 if outer_rule == "paper" else (loaded._meta_count + 150) // loaded.meta_interval
    loaded.learn(150, reset_num_timesteps=False)
    # Every learned quantity keeps being optimised: one more inner step per gradient step (150 here), one more outer
    # step per gradient step (paper) or per completed interval of meta_interval gradient steps (averaged).
    for name, optimizer in _optimizers(loaded).items():
        assert _step_count(optimizer) == steps[name] + (outer_steps if name in ("epsilon", "alpha") else 150), name
    assert all(getattr(loaded, name).item() != value for name, value in values.items())
    assert 0.0 <= loaded.epsilon.item() <= loaded.epsilon_max  # epsilon may sit at its bound
    # The reloaded tensors are still the ones the optimizers update.
    assert loaded.epsilon_optimizer.param_groups[0]["params"][0] is loaded.epsilon
    assert loaded.lagrangian.optimizer.param_groups[0]["params"][0] is loaded.lagrangian.nu


def test_multi_env_and_dict_observations():
    env = make_vec_env("SafeNavigation2D-v0", n_envs=2, env_kwargs=dict(dict_observations=True))
    model = MetaSACLag("MultiInputPolicy", env, seed=0, **SMALL)
    model.learn(160)
    assert model.num_timesteps == 160 and model.replay_buffer.size() == 80 and model.replay_buffer.n_transitions() == 160
    action, _ = model.predict(env.reset(), deterministic=True)
    assert action.shape == (2, 2)


def test_logs_paper_and_sb3_keys(tmp_path):
    model = MetaSACLag("MlpPolicy", "SafeNavigation2D-v0", seed=0, **SMALL)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(300, log_interval=1)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    for key in [
        "train/actor_loss",
        "train/critic_loss",
        "train/ent_coef",
        "train/epsilon",
        "train/nu",
        "train/safety_critic_loss",
        "train/epsilon_objective",
        "train/alpha_objective",
        "train/epsilon_meta_grad",
        "train/alpha_meta_grad",
        "train/nu_clipped",
        "train/entropy",
        "rollout/ep_rew_mean",
        "rollout/ep_cost_mean",
        "rollout/ep_violations_mean",
        "rollout/violation_rate",
    ]:
        assert key in header, key


def test_violation_rate_is_the_share_of_episodes_with_a_violation(tmp_path):
    # SafeNavigation2DSoft-v0: violations do not end the episode, so an episode can have many violating steps.
    model = MetaSACLag("MlpPolicy", "SafeNavigation2DSoft-v0", seed=0, **{**SMALL, "learning_starts": 2_000})
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(1_200, log_interval=1)
    rows = (tmp_path / "progress.csv").read_text().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    logged = {key: float(last[header.index(key)]) for key in ("rollout/ep_violations_mean", "rollout/violation_rate")}
    violations = [count for _, count in model.ep_cost_buffer]
    assert logged["rollout/ep_violations_mean"] == pytest.approx(np.mean(violations))
    assert logged["rollout/violation_rate"] == pytest.approx(np.mean([count > 0 for count in violations]))
    assert 0.0 <= logged["rollout/violation_rate"] <= 1.0


def test_episode_cost_statistics():
    env = MarkedEnv()
    model = MetaSACLag("MlpPolicy", env, learning_starts=10_000, n_initial_states=0, seed=0)
    model.learn(200)
    # Recompute per-episode violations from the env's own log.
    per_episode: dict[float, int] = {}
    for obs, cost in env.transitions:
        per_episode[obs[0]] = per_episode.get(obs[0], 0) + int(cost > 0)
    finished = [per_episode[e] for e in sorted(per_episode)][: len(model.ep_cost_buffer)]
    assert [v for _, v in model.ep_cost_buffer] == finished[-len(model.ep_cost_buffer) :]
    assert [c for c, _ in model.ep_cost_buffer] == [float(v) for v in finished[-len(model.ep_cost_buffer) :]]


class DiscreteEnv(gym.Env):
    observation_space = spaces.Box(-1, 1, (2,), np.float32)
    action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, True, False, {"cost": 0.0}


def test_discrete_actions_are_refused():
    with pytest.raises(AssertionError, match=r"only supports .*Box.* Discrete"):
        MetaSACLag("MlpPolicy", DiscreteEnv())


def test_env_without_cost_fails_at_first_step_with_advice():
    with pytest.raises(KeyError, match=r"no 'cost' entry.*info\['cost'\]"):
        MetaSACLag("MlpPolicy", "Pendulum-v1", learning_starts=10).learn(5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(gamma_c=1.0), r"gamma_c must lie in \[0.0, 1.0\)"),
        (dict(nu=-1.0), "nu must lie in"),
        (dict(epsilon=1.5), r"epsilon must lie in \[0.0, 1.0\]"),
        (dict(ent_coef="auto_0.0"), r"ent_coef \(the initial alpha\) must lie in \(0.0, 1.0\]"),
        (dict(ent_coef=float("nan")), r"ent_coef \(the initial alpha\) must lie in"),
        (dict(ent_coef="fixed"), "ent_coef must be 'auto', 'auto_<initial alpha>' or a float"),
        (dict(nu_learning_rate=0.0), "nu_learning_rate must lie in"),
        (dict(outer_rule_kwargs=dict(epsilon_objective="quadratic")), "epsilon_objective must be one of"),
        (dict(policy_batch="safe"), "policy_batch must be one of"),
        (dict(rmsprop_kwargs=dict(centered=True)), "non-centered RMSProp"),
        (dict(violation_threshold=-0.1), "violation_threshold must lie in"),
        (dict(outer_rule="fast"), "outer_rule must be one of"),
        (dict(outer_rule_kwargs=dict(meta_interval=0)), "meta_interval must be a whole number"),
        (dict(outer_rule_kwargs=dict(meta_interval=2.5)), "whole number"),
        (dict(outer_rule="paper", outer_rule_kwargs=dict(meta_interval=5)), "'paper' has no setting 'meta_interval'"),
        (dict(outer_rule_kwargs=dict(nu_derivative="smooth")), "nu_derivative must be one of"),
        (dict(outer_rule_kwargs=dict(min_entropy="high")), "min_entropy must be a float, 'auto' or '<k>\\*dim'"),
        (dict(outer_rule_kwargs=dict(min_entropy=float("nan"))), "min_entropy must be a float"),
        (dict(outer_rule_kwargs=dict(min_entropy=float("inf"))), "min_entropy must lie below inf"),
        (dict(outer_rule="paper", outer_rule_kwargs=dict(min_entropy=-1.0)), "'paper' has no setting 'min_entropy'"),
        (dict(outer_rule_kwargs=dict(max_entropy="low")), "max_entropy must be a float, 'auto' or '<k>\\*dim'"),
        (dict(outer_rule_kwargs=dict(max_entropy=float("-inf"))), "max_entropy must lie above -inf"),
        (dict(outer_rule_kwargs=dict(min_entropy="1*dim", max_entropy="-1*dim")), r"max_entropy \(-1.0\) must lie above"),
        (dict(outer_rule="paper", outer_rule_kwargs=dict(max_entropy=0.0)), "'paper' has no setting 'max_entropy'"),
        (dict(outer_rule_kwargs=dict(min_entropy=-1.0, max_entropy=-2.0)), r"max_entropy \(-2.0\) must lie above"),
        (dict(outer_rule_kwargs=dict(epsilon_band=-0.1)), "epsilon_band must lie in"),
        (dict(outer_rule="paper", outer_rule_kwargs=dict(alpha_max_grad_norm=0.0)), "alpha_max_grad_norm must lie in"),
        (dict(outer_rule="paper", outer_rule_kwargs=dict(epsilon_band=0.1)), "'paper' has no setting 'epsilon_band'"),
        (dict(outer_rule_kwargs=dict(epsilon_learning_rate=float("inf"))), "epsilon_learning_rate must lie in"),
    ],
)
def test_out_of_range_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MetaSACLag("MlpPolicy", "SafeBandit-v0", **kwargs)


@pytest.mark.parametrize(
    "rule",
    [
        dict(outer_rule="paper"),
        dict(outer_rule="averaged"),
        dict(outer_rule="averaged", outer_rule_kwargs=dict(meta_interval=1, min_entropy=-np.inf)),
        dict(outer_rule="averaged", outer_rule_kwargs=dict(nu_derivative="projected")),
        # the screened pieces: J_nl, J_c at initial states, an entropy floor and ceiling
        dict(
            outer_rule_kwargs=dict(
                epsilon_objective="nonlinear", constraint_states="initial", min_entropy="-2*dim", max_entropy="0*dim"
            ),
        ),
    ],
)
def test_alpha_epsilon_and_nu_stay_in_range_under_every_rule(rule):
    # Large outer steps and a fast nu push every value against its bounds.
    model = MetaSACLag(
        "MlpPolicy",
        "SafeNavigation2DSoft-v0",
        nu_learning_rate=1.0,
        epsilon=0.4,
        epsilon_max=0.8,
        seed=0,
        outer_rule=rule.get("outer_rule", "averaged"),
        outer_rule_kwargs=dict(rule.get("outer_rule_kwargs", {}), alpha_learning_rate=0.5, epsilon_learning_rate=0.5),
        **SMALL,
    )
    seen = {name: [getattr(model, name).item()] for name in ("alpha", "epsilon", "nu")}
    for _ in range(6):
        model.learn(100, reset_num_timesteps=False)
        for name, values in seen.items():
            values.append(getattr(model, name).item())
    assert all(LOG_ALPHA_MIN <= np.log(value) <= 0.0 for value in seen["alpha"]), seen["alpha"]
    assert all(0.0 <= value <= np.float32(0.8) for value in seen["epsilon"]), seen["epsilon"]
    assert all(value >= 0.0 for value in seen["nu"]), seen["nu"]
    assert len(set(seen["epsilon"])) > 1 and len(set(seen["alpha"])) > 1, "the outer steps moved"


@pytest.mark.parametrize("outer_rule", ["averaged", "paper"])
@pytest.mark.parametrize("frozen", ["epsilon", "alpha"])
def test_ablations_freeze_their_value(frozen, outer_rule):
    freeze = dict(learn_epsilon=False) if frozen == "epsilon" else dict(ent_coef=1.0)  # a float ent_coef: fixed alpha
    model = MetaSACLag("MlpPolicy", "SafeBandit-v0", seed=0, outer_rule=outer_rule, **freeze, **SMALL)
    before = getattr(model, frozen).clone()
    model.learn(200)
    assert th.equal(getattr(model, frozen), before)
    frozen_optimizer, other_optimizer = model.epsilon_optimizer, model.ent_coef_optimizer
    if frozen == "alpha":
        frozen_optimizer, other_optimizer = other_optimizer, frozen_optimizer
    assert not frozen_optimizer.state, "the frozen value's optimizer never stepped"
    assert _step_count(other_optimizer) == model._n_updates // model.meta_interval > 0


@pytest.mark.parametrize("algorithm, batches_per_update", [(MetaSACLag, 2), (SACLag, 1)])
@pytest.mark.parametrize("policy_batch", ["non_violating", "all"])
def test_policy_batch_decides_whether_violations_reach_reward_critics(
    algorithm, batches_per_update, policy_batch, tmp_path, monkeypatch
):
    model = algorithm("MlpPolicy", "SafeBandit-v0", policy_batch=policy_batch, seed=0, **SMALL)
    violations_per_batch, critic_batches = [], []
    sample = model.sample_policy_batch
    module = sys.modules[type(model).__module__]  # where the algorithm's train() finds reward_critic_loss
    reward_critic_loss = module.reward_critic_loss

    def spy_sample(batch_size):
        batch = sample(batch_size)
        violations_per_batch.append(batch.violations.sum().item())
        return batch

    def spy_critic(critic, critic_target, data, *args):
        critic_batches.append(data.violations.sum().item())
        return reward_critic_loss(critic, critic_target, data, *args)

    model.sample_policy_batch = spy_sample
    monkeypatch.setattr(module, "reward_critic_loss", spy_critic)
    model.learn(300)
    # Random actions on the bandit violate in about a quarter of the episodes.
    assert model.replay_buffer.safety.size() > 0
    # B for the critics and the actor, and B' for MetaSACLag's epsilon step, all come from sample_policy_batch.
    assert len(violations_per_batch) == batches_per_update * model._n_updates > 0
    assert len(critic_batches) == model._n_updates
    if policy_batch == "all":
        assert sum(critic_batches) > 0
        # MetaSACLag's B' holds violating transitions as well.
        assert (sum(violations_per_batch) > sum(critic_batches)) == (batches_per_update == 2)
    else:
        assert sum(violations_per_batch) == 0
    model.save(tmp_path / "model")
    assert algorithm.load(tmp_path / "model").policy_batch == policy_batch


@pytest.mark.parametrize("recorded", [None, "0.0.9"])
def test_a_file_of_another_version_is_refused_with_the_version_it_names(tmp_path, recorded):
    model = MetaSACLag("MlpPolicy", "SafeBandit-v0", seed=0, **SMALL)
    if recorded is None:  # what the development versions before the release wrote: no version at all
        del model.package_version
    else:
        model.package_version = recorded
    model.save(tmp_path / "old")
    expected = (
        "a development version of sb3-metasaclag from before the 0.1.0 release"
        if recorded is None
        else f"sb3-metasaclag {recorded}"
    )
    with pytest.raises(ValueError, match=f"old.zip was saved by {expected}.*train the model again"):
        MetaSACLag.load(tmp_path / "old")
    model.package_version = sb3_metasaclag.__version__
    model.save(tmp_path / "current")
    assert MetaSACLag.load(tmp_path / "current").package_version == sb3_metasaclag.__version__


def test_the_development_aliases_are_gone():
    for old in ("sb3_metasaclag.meta_sac_lag", "sb3_metasaclag.sac_lag", "sb3_metasaclag.rcpo_meta_sac"):
        result = subprocess.run([sys.executable, "-c", f"import {old}"], capture_output=True, text=True)
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, old
    model = MetaSACLag("MlpPolicy", "SafeBandit-v0", **SMALL)
    assert not hasattr(model, "sample_main_batch")
    for argument in ("main_batch", "epsilon_batch", "alpha", "learn_alpha", "nu_optimizer", "meta_gradient_method"):
        with pytest.raises(TypeError, match=argument):
            MetaSACLag("MlpPolicy", "SafeBandit-v0", **{argument: None})
