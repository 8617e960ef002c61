"""Every algorithm of the package, SB3 style: learn, predict, save, load, continue, set_env."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_metasaclag import RCPOSAC, MetaSACLag, RCPOMetaSAC, SACLag

MODEL_LIST = [MetaSACLag, SACLag, RCPOSAC, RCPOMetaSAC]
SMALL = dict(
    learning_starts=64, batch_size=32, n_initial_states=8, initial_state_batch_size=8, policy_kwargs=dict(net_arch=[16])
)


def learned_quantities(model):
    """Name -> (tensor, optimizer) for what the algorithm learns besides the networks."""
    learned = {"nu": (model.lagrangian.nu, model.lagrangian.optimizer)}
    if getattr(model, "ent_coef_optimizer", None) is not None:
        learned["alpha"] = (model.log_ent_coef, model.ent_coef_optimizer)
    if getattr(model, "learn_epsilon", False):
        learned["epsilon"] = (model.epsilon, model.epsilon_optimizer)
    return learned


def step_count(optimizer) -> int:
    return int(next(iter(optimizer.state.values()))["step"])


@pytest.mark.parametrize("model_class", MODEL_LIST)
@pytest.mark.parametrize("n_envs, dict_observations", [(1, False), (2, False), (1, True), (2, True)])
def test_learn_predict_save_load_continue(tmp_path, model_class, n_envs, dict_observations):
    env = make_vec_env("SafeNavigation2D-v0", n_envs=n_envs, env_kwargs=dict(dict_observations=dict_observations), seed=0)
    policy = "MultiInputPolicy" if dict_observations else "MlpPolicy"
    model = model_class(policy, env, seed=0, **SMALL)
    model.learn(200)
    obs = env.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (n_envs, 2) and np.all(np.abs(action) <= 1)

    model.save(tmp_path / "model")
    loaded = model_class.load(tmp_path / "model", env=env)
    assert type(loaded) is model_class
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], action)
    learned = learned_quantities(loaded)
    assert {"nu", "alpha"} <= learned.keys()
    for name, (tensor, optimizer) in learned.items():
        original = learned_quantities(model)[name][0]
        assert th.equal(tensor, original), name
        assert optimizer.param_groups[0]["params"][0] is tensor, f"{name}: the optimizer must update the loaded tensor"
    steps = {name: step_count(optimizer) for name, (_, optimizer) in learned.items()}
    loaded.learn(100, reset_num_timesteps=False)
    for name, (tensor, optimizer) in learned.items():
        assert step_count(optimizer) > steps[name], f"{name} keeps being optimised after loading"

    loaded.set_env(make_vec_env("SafeNavigation2D-v0", n_envs=n_envs, env_kwargs=dict(dict_observations=dict_observations)))
    loaded.learn(50, reset_num_timesteps=False)


@pytest.mark.parametrize("model_class", MODEL_LIST)
def test_resume_without_reset_continues_the_episode_in_progress(tmp_path, model_class):
    """load(force_reset=False) and set_env(force_reset=False), then learn(reset_num_timesteps=False), as with SAC."""
    env = make_vec_env("SafeNavigation2DSoft-v0", n_envs=2, seed=0)
    model = model_class("MlpPolicy", env, seed=0, **SMALL)
    model.learn(90)  # episodes last 200 steps: both are in progress
    model.save(tmp_path / "model")
    loaded = model_class.load(tmp_path / "model", env=env, force_reset=False)
    assert loaded._last_obs is not None
    loaded.learn(20, reset_num_timesteps=False)
    assert loaded.num_timesteps == 110
    other = make_vec_env("SafeNavigation2DSoft-v0", n_envs=2, seed=1)
    other.reset()
    reloaded = model_class.load(tmp_path / "model")
    reloaded.set_env(other, force_reset=False)
    reloaded._last_obs = other.reset()  # SB3 keeps the saved observation; continue from the new env's
    reloaded.learn(20, reset_num_timesteps=False)
    assert reloaded.num_timesteps == 110
    loaded.learn(400, reset_num_timesteps=False)  # the episodes in progress end and are counted
    assert len(loaded.ep_cost_buffer) >= 2


@pytest.mark.parametrize("model_class", MODEL_LIST)
def test_learns_on_the_bandit_box_env_too(model_class):
    model = model_class("MlpPolicy", "SafeBandit-v0", seed=0, **SMALL)
    model.learn(150)
    assert model.replay_buffer.size() == 150


@pytest.mark.parametrize("model_class", [SACLag, RCPOSAC, RCPOMetaSAC])
def test_fixed_epsilon_is_bit_identical_after_training(model_class):
    model = model_class("MlpPolicy", "SafeNavigation2D-v0", epsilon=0.37, seed=0, **SMALL)
    before = model.epsilon.clone()
    model.learn(200)
    assert th.equal(model.epsilon, before)


def test_fixed_ent_coef_for_the_sac_v2_baselines():
    model = SACLag("MlpPolicy", "SafeBandit-v0", ent_coef=0.05, seed=0, **SMALL)
    model.learn(150)
    assert model.alpha.item() == pytest.approx(0.05) and model.ent_coef_optimizer is None


def test_baseline_argument_errors():
    with pytest.raises(ValueError, match="epsilon must lie in"):
        SACLag("MlpPolicy", "SafeBandit-v0", epsilon=2.0)
    with pytest.raises(ValueError, match="ent_coef must be"):
        SACLag("MlpPolicy", "SafeBandit-v0", ent_coef="fixed")
    with pytest.raises(TypeError, match="takes no learn_epsilon"):  # epsilon is fixed: not in its signature
        RCPOMetaSAC("MlpPolicy", "SafeBandit-v0", learn_epsilon=True)


def test_rcpo_actor_objective_is_the_penalised_critic():
    qr = th.tensor([[1.0, 3.0]])
    qc = th.tensor([[0.5, 0.0]])
    nu = th.tensor(4.0)
    # Eq. 11 combines min Qr and max Qc; RCPO takes the min over twins of Qr - nu Qc.
    assert SACLag.penalised_value(qr, qc, nu).item() == pytest.approx(1.0 - 4.0 * 0.5)
    assert RCPOSAC.penalised_value(qr, qc, nu).item() == pytest.approx(min(1.0 - 2.0, 3.0 - 0.0))
    assert RCPOMetaSAC.penalised_value(qr, qc, nu).item() == RCPOSAC.penalised_value(qr, qc, nu).item()


def test_sac_lag_make_with_env_id_and_gym_env():
    for env in ("SafeNavigation2D-v0", gym.make("SafeNavigation2D-v0")):
        SACLag("MlpPolicy", env, **SMALL).learn(70)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch_size=0), "batch_size must be a whole number >= 1"),
        (dict(batch_size=-4), "batch_size must be a whole number >= 1"),
        (dict(nu=float("inf")), r"nu must lie in \[0.0, inf\)"),
        (dict(epsilon_max=float("inf")), r"epsilon_max must lie in \(0.0, 1.0\]"),
        (dict(rmsprop_kwargs={"alpha": 1.5}), r"rmsprop_kwargs\['alpha'\] must lie in \[0.0, 1.0\)"),
        (dict(rmsprop_kwargs={"lr": 0.1}), "lr comes from the learning rates"),
        (dict(replay_buffer_kwargs={"safety_buffer_size": 0}), "safety_buffer_size'\\] must be a whole number >= 1"),
        (dict(target_update_interval=0), "target_update_interval must be a whole number >= 1"),
        (dict(gamma=1.5), r"gamma must lie in \[0.0, 1.0\]"),
        (dict(tau=2), r"tau must lie in \[0.0, 1.0\]"),
    ],
)
@pytest.mark.parametrize("model_class", MODEL_LIST)
def test_out_of_range_arguments_are_refused(model_class, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model_class("MlpPolicy", "SafeBandit-v0", **kwargs)


def _rewrite_data(path, **changes):
    """Copy of a saved model whose `data` entries are replaced (as a hand-edited or corrupted file would be)."""
    import json
    import zipfile

    target = path.with_name(f"edited_{path.name}")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as archive:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "data":
                data = json.loads(content)
                data.update(changes)
                content = json.dumps(data).encode()
            archive.writestr(item, content)
    return target


@pytest.mark.parametrize("model_class", MODEL_LIST)
def test_load_checks_the_file_like_the_constructor(tmp_path, model_class):
    from stable_baselines3 import SAC

    model_class("MlpPolicy", "SafeBandit-v0", **SMALL).save(tmp_path / "model.zip")
    with pytest.raises(ValueError, match=r"gamma_c must lie in \[0.0, 1.0\), got 7.5"):
        model_class.load(_rewrite_data(tmp_path / "model.zip", gamma_c=7.5))
    SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8])).save(tmp_path / "sac.zip")
    with pytest.raises(
        ValueError, match=f"saved by stable_baselines3's SAC: load it with that class's load\\(\\), not {model_class.__name__}"
    ):
        model_class.load(tmp_path / "sac.zip")
    other = next(cls for cls in MODEL_LIST if cls is not model_class)
    for path in (tmp_path / "model.zip", tmp_path / "model", str(tmp_path / "model")):  # with or without the suffix
        with pytest.raises(ValueError, match=f"saved by {model_class.__name__}: .* not {other.__name__}.load"):
            other.load(path)


class _NanObservationEnv(gym.Env):
    """A 1-D task whose observation turns NaN at its 5th step."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.full(2, np.nan if self.t == 5 else 0.1, dtype=np.float32)
        return obs, 0.0, False, self.t >= 20, {"cost": 0.0}


@pytest.mark.parametrize("model_class", MODEL_LIST)
def test_non_finite_observation_is_refused_and_the_run_cannot_continue_out_of_step(model_class):
    env = make_vec_env(_NanObservationEnv, n_envs=2, seed=0)
    model = model_class("MlpPolicy", env, **SMALL)
    stored = model.replay_buffer.size()
    with pytest.raises(ValueError, match=r"observation of env 0 at step 10 is not finite"):
        model.learn(50)
    assert model.replay_buffer.size() == stored + 4  # the 4 good steps (of both envs), nothing of the bad one
    with pytest.raises(RuntimeError, match=r"stopped on a bad step .* observation of env 0"):
        model.learn(10, reset_num_timesteps=False)
    model.set_env(make_vec_env(_GoodEnv, n_envs=2, seed=0))
    model.learn(10, reset_num_timesteps=False)  # a fresh reset: continuing is fine again


class _GoodEnv(_NanObservationEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return np.nan_to_num(obs, nan=0.2), reward, terminated, truncated, info


_FULL_DISK = """
import resource, signal, sys
from sb3_metasaclag import {cls}
model = {cls}.load(sys.argv[1])
model.load_replay_buffer(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writing past the limit then fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
for save, path in ((model.save, sys.argv[1]), (model.save_replay_buffer, sys.argv[2])):
    try:
        save(path)
    except OSError as error:
        print("OSError:", error)
"""


@pytest.mark.parametrize("model_class", MODEL_LIST)
def test_failed_saves_leave_the_previous_files_intact(tmp_path, model_class):
    import os
    import subprocess
    import sys

    model = model_class("MlpPolicy", "SafeBandit-v0", **SMALL)
    model.learn(80)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    before = {name: (tmp_path / name).read_bytes() for name in ("model.zip", "buffer.pkl")}
    script = _FULL_DISK.format(cls=model_class.__name__)
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "model.zip"), str(tmp_path / "buffer.pkl")],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("OSError: ") == 2 and "was left as it was" in result.stdout
    for name, content in before.items():
        assert (tmp_path / name).read_bytes() == content, f"{name} was damaged by the failed save"
    assert sorted(os.listdir(tmp_path)) == ["buffer.pkl", "model.zip"]  # no temporary file left behind
    loaded = model_class.load(tmp_path / "model.zip")
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    assert loaded.replay_buffer.size() == model.replay_buffer.size()
    with pytest.raises(OSError, match="Cannot save to /proc/"):
        model.save("/proc/model.zip")  # SB3's own save recursed until RecursionError here


@pytest.mark.parametrize("model_class", [MetaSACLag, RCPOMetaSAC])
def test_sac_ent_coef_in_the_meta_variants(model_class):
    fixed = model_class("MlpPolicy", "SafeBandit-v0", ent_coef=0.05, **SMALL)
    assert not fixed.learn_alpha and fixed.alpha.item() == pytest.approx(0.05)
    fixed.learn(80)
    assert fixed.alpha.item() == pytest.approx(0.05)  # fixed, as SAC's float ent_coef
    learned = model_class("MlpPolicy", "SafeBandit-v0", ent_coef="auto_0.1", **SMALL)
    assert learned.learn_alpha and learned.alpha.item() == pytest.approx(0.1)
    with pytest.raises(ValueError, match="not towards a target entropy"):
        model_class("MlpPolicy", "SafeBandit-v0", target_entropy=-2.0, **SMALL)
    with pytest.raises(ValueError, match="'auto', 'auto_<initial alpha>' or a float"):
        model_class("MlpPolicy", "SafeBandit-v0", ent_coef="automatic", **SMALL)
    with pytest.raises(TypeError, match="alpha"):  # one name for the temperature: SAC's ent_coef
        model_class("MlpPolicy", "SafeBandit-v0", ent_coef=0.1, alpha=0.5, **SMALL)


@pytest.mark.parametrize("model_class", MODEL_LIST)
def test_sac_arguments_that_cannot_apply_are_refused_with_the_reason(model_class):
    from stable_baselines3 import HerReplayBuffer

    from sb3_metasaclag.common.buffers import ConstraintReplayBuffer

    class MyBuffer(ConstraintReplayBuffer):
        pass

    model = model_class("MlpPolicy", "SafeBandit-v0", replay_buffer_class=MyBuffer, sde_sample_freq=4, **SMALL)
    assert type(model.replay_buffer) is MyBuffer
    with pytest.raises(ValueError, match=r"constraint-aware replay buffer .* got HerReplayBuffer"):
        model_class("MlpPolicy", "SafeBandit-v0", replay_buffer_class=HerReplayBuffer, **SMALL)
    if model_class.supports_sde:  # SACLag, RCPOSAC: gSDE as in SAC (tests/test_sde.py)
        assert model_class("MlpPolicy", "SafeBandit-v0", use_sde=True, **SMALL).actor.use_sde
    else:
        with pytest.raises(ValueError, match="does not support gSDE"):
            model_class("MlpPolicy", "SafeBandit-v0", use_sde=True, **SMALL)
    with pytest.raises(ValueError, match="does not support optimize_memory_usage"):
        model_class("MlpPolicy", "SafeBandit-v0", optimize_memory_usage=True, **SMALL)


class _AlwaysViolatingEnv(_GoodEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated, truncated, {**info, "cost": 1.0}


@pytest.mark.parametrize("model_class", MODEL_LIST)
def test_training_waits_for_non_violating_transitions_only_when_it_needs_them(model_class):
    model = model_class("MlpPolicy", _AlwaysViolatingEnv(), **SMALL)  # policy_batch="all": every transition is usable
    model.learn(100)
    assert model.replay_buffer.non_violating_size() == 0 and model._n_updates > 0
    waiting = model_class("MlpPolicy", _AlwaysViolatingEnv(), policy_batch="non_violating", **SMALL)
    with pytest.warns(UserWarning, match="Every transition collected so far violates"):
        waiting.learn(100)
    assert waiting._n_updates == 0
