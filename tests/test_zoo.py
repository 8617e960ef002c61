"""RL Zoo integration: the start-up hook, default hyperparameters, samplers, and `python -m rl_zoo3.*` end to end."""

import argparse
import glob
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from stable_baselines3 import SAC

from sb3_metasaclag import zoo
from sb3_metasaclag.envs import BANDIT_ENV_IDS, BUILTIN_ENV_IDS
from sb3_metasaclag.zoo import ZOO_ALGOS

REPO = Path(__file__).resolve().parents[1]
COST_METRICS = {
    "rollout/ep_cost_mean",
    "rollout/ep_violations_mean",
    "rollout/violation_rate",
    "train/nu",
    "train/safety_critic_loss",
}
# Table 1 of the paper: (epsilon of the fixed-threshold baselines, initial nu of Meta SAC-Lag / SACv2-Lag, nu of RCPO-*)
TABLE_1 = {
    "SafetyCarCircle2Gymnasium-v0": (0.5, 100.0, 1.0),
    "SafetyHumanoidVelocityGymnasium-v1": (0.4, 10.0, 10.0),
    "SafeHumanoidVelocity-v1": (0.4, 10.0, 10.0),
    "SafeDrawerClose-v0": (0.6, 10.0, 10.0),
    "SafeFetchPushTopple-v0": (0.5, 1000.0, 10.0),
    "SafeEggManipulate-v0": (0.5, 100.0, 1.0),
}
PAPER_ENV_IDS = [*TABLE_1, "SafePourCoffee-v0"]  # Pour Coffee is not in Table 1
DICT_OBSERVATIONS = {"SafeFetchPushTopple-v0", "SafeEggManipulate-v0"}


def run(args, cwd=None, env=None, timeout=600, python=sys.executable):
    """Run `python args...` in a fresh interpreter (so the .pth start-up hook is exercised) and return the result."""
    # One torch thread per process: the suite runs on two pytest workers on two cores.
    environ = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **(env or {}))
    return subprocess.run([python, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout, check=False)


def assert_ok(result):
    output = f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"exit {result.returncode}\n{output}"


def scalar_tags(tensorboard_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (event_file,) = glob.glob(os.path.join(tensorboard_dir, "**", "events.out.tfevents.*"), recursive=True)
    accumulator = EventAccumulator(event_file)
    accumulator.Reload()
    return set(accumulator.Tags()["scalars"])


# ----------------------------------------------------------------------------------------------------------------------
# The start-up hook
# ----------------------------------------------------------------------------------------------------------------------


def test_hook_registers_algorithms_samplers_and_environments(tmp_path):
    code = (
        "import gymnasium as gym, rl_zoo3.utils as u, rl_zoo3.hyperparams_opt as h;"
        "print(sorted(k for k in u.ALGOS if k in {'metasaclag','saclag','rcpo_sac','rcpo_metasac'}));"
        "print(u.ALGOS['metasaclag'].__name__, u.ALGOS['sac'].__module__);"
        "print(sorted(k for k in h.HYPERPARAMS_SAMPLER if k in {'metasaclag','saclag','rcpo_sac','rcpo_metasac'}));"
        "print('SafeNavigation2D-v0' in gym.envs.registry)"
    )
    result = run(["-c", code], tmp_path)
    assert_ok(result)
    lines = result.stdout.split("\n")
    assert lines[0] == "['metasaclag', 'rcpo_metasac', 'rcpo_sac', 'saclag']"
    assert lines[1] == "MetaSACLag stable_baselines3.sac.sac"  # stock SAC untouched
    assert lines[2] == "['metasaclag', 'rcpo_metasac', 'rcpo_sac', 'saclag']"
    assert lines[3] == "True"


def test_hook_imports_nothing_at_startup(tmp_path):
    # The .pth runs in every interpreter of the environment: it must not import torch, SB3 or this package.
    code = "import sys; print(sorted(m for m in ('torch', 'sb3_metasaclag', 'rl_zoo3') if m in sys.modules))"
    result = run(["-c", code], tmp_path)
    assert_ok(result)
    assert result.stdout.strip() == "[]"
    result = run(["-c", "import sys; print(type(sys.meta_path[0]).__name__)"], tmp_path)
    assert result.stdout.strip() == "RLZooFinder"


def test_hook_can_be_disabled_and_registration_done_by_hand(tmp_path):
    code = (
        "import rl_zoo3.utils as u; before = 'metasaclag' in u.ALGOS;"
        "from sb3_metasaclag.zoo import register_with_rl_zoo; register_with_rl_zoo(); register_with_rl_zoo();"
        "import rl_zoo3.hyperparams_opt as h; print(before, 'metasaclag' in u.ALGOS, 'metasaclag' in h.HYPERPARAMS_SAMPLER)"
    )
    result = run(["-c", code], tmp_path, env={"SB3_METASACLAG_DISABLE_ZOO_HOOK": "1"})
    assert_ok(result)
    assert result.stdout.strip() == "False True True"


def test_broken_package_never_breaks_rl_zoo(tmp_path):
    # A package that fails to import (a missing or broken dependency) shadows the real one on PYTHONPATH.
    fake = tmp_path / "fake" / "sb3_metasaclag"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('simulated broken dependency')\n")
    code = "import rl_zoo3.utils as u, rl_zoo3.exp_manager; print('metasaclag' in u.ALGOS, 'sac' in u.ALGOS)"
    result = run(["-c", code], tmp_path, env={"PYTHONPATH": str(tmp_path / "fake")})
    assert_ok(result)
    assert result.stdout.strip() == "False True"
    assert "could not register its algorithms with RL Zoo" in result.stderr
    assert "simulated broken dependency" in result.stderr


# ----------------------------------------------------------------------------------------------------------------------
# Default hyperparameters
# ----------------------------------------------------------------------------------------------------------------------


def load_hyperparams(algo):
    with open(zoo.hyperparams_file(algo)) as file:
        return yaml.safe_load(file)


@pytest.mark.parametrize("algo", [*ZOO_ALGOS, "sac"])
def test_hyperparams_cover_the_environments_and_build_models(algo):
    hyperparams = load_hyperparams(algo)
    assert set(hyperparams) == {*BUILTIN_ENV_IDS, *BANDIT_ENV_IDS, *PAPER_ENV_IDS}
    cls = ZOO_ALGOS.get(algo, SAC)
    for env_id, params in hyperparams.items():
        params = dict(params)
        assert params.pop("policy") == ("MultiInputPolicy" if env_id in DICT_OBSERVATIONS else "MlpPolicy")
        assert params.pop("n_timesteps") > 0
        if env_id in PAPER_ENV_IDS:
            # Hard constraints (paper Sec. 5.1): the zoo wraps the Safety-Gymnasium task.
            assert params.pop("env_wrapper") == "sb3_metasaclag.common.wrappers.HardConstraint"
        if "policy_kwargs" in params:
            params["policy_kwargs"] = eval(params["policy_kwargs"])  # the zoo's own convention for this key
        # Every remaining key is a constructor argument: building the model on a cheap environment proves it.
        model = cls("MlpPolicy", "SafeBandit-v0", **params)
        for name, value in params.items():
            if name in ("nu", "epsilon"):
                assert float(getattr(model, name).detach()) == pytest.approx(value), (env_id, name)


@pytest.mark.parametrize("env_id", list(TABLE_1))
def test_hyperparams_follow_table_1(env_id):
    epsilon, nu_lagrangian, nu_rcpo = TABLE_1[env_id]
    assert "epsilon" not in load_hyperparams("metasaclag")[env_id]  # learned, starts at the default 1.0
    assert load_hyperparams("metasaclag")[env_id]["nu"] == nu_lagrangian
    assert load_hyperparams("saclag")[env_id]["nu"] == nu_lagrangian
    for algo in ("saclag", "rcpo_sac", "rcpo_metasac"):
        assert load_hyperparams(algo)[env_id]["epsilon"] == epsilon
    for algo in ("rcpo_sac", "rcpo_metasac"):
        assert load_hyperparams(algo)[env_id]["nu"] == nu_rcpo


def test_experiment_manager_default_config(tmp_path):
    from rl_zoo3.exp_manager import ExperimentManager

    def config(algo, env_id, **kwargs):
        return ExperimentManager(argparse.Namespace(), algo, env_id, str(tmp_path), **kwargs).config

    for algo in ZOO_ALGOS:
        assert Path(config(algo, "SafeNavigation2D-v0")) == zoo.hyperparams_file(algo)
    # -conf still overrides
    assert config("metasaclag", "SafeNavigation2D-v0", config="mine.yml") == "mine.yml"
    # stock SAC: RL Zoo's own file for its environments, ours only for ours
    import rl_zoo3

    assert Path(config("sac", "Pendulum-v1")) == Path(rl_zoo3.__file__).parent / "hyperparams" / "sac.yml"
    assert Path(config("sac", "SafeNavigation2D-v0")) == zoo.hyperparams_file("sac")
    with pytest.raises(ValueError, match="expected one of"):
        zoo.hyperparams_file("ppo")


# ----------------------------------------------------------------------------------------------------------------------
# Optuna samplers
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", list(ZOO_ALGOS))
def test_samplers_sample_what_matters_and_build_models(algo):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    params = zoo.SAMPLERS[algo](trial, 1, 1, {})
    # The converter (used by --trial-id) turns the stored raw parameters into the same arguments.
    assert zoo.convert_safe_params(trial.params) == params
    assert {"learning_rate", "nu_learning_rate", "nu", "gamma_c", "policy_kwargs"} <= set(params)
    assert 0.9 <= params["gamma_c"] < 1.0
    assert "alpha" not in params and "ent_coef" not in params  # tuned by the algorithm itself
    if algo == "metasaclag":
        assert "epsilon" not in params and {"epsilon_learning_rate", "alpha_learning_rate"} <= set(params["outer_rule_kwargs"])
    else:
        assert 0.05 <= params["epsilon"] <= 1.0
    model = ZOO_ALGOS[algo]("MlpPolicy", "SafeBandit-v0", **params)
    assert model.gamma_c == params["gamma_c"]
    assert float(model.nu.detach()) == pytest.approx(params["nu"])
    with pytest.raises(ValueError, match="Unknown net_arch"):
        zoo.convert_safe_params({"net_arch": "huge"})


# ----------------------------------------------------------------------------------------------------------------------
# python -m rl_zoo3.train / enjoy / -optimize, end to end
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", [*ZOO_ALGOS, "sac"])
def test_zoo_train_and_enjoy(algo, tmp_path):
    env_id = "SafeNavigation2D-v0"
    train = ["-m", "rl_zoo3.train", "--algo", algo, "--env", env_id, "-n", "400", "-f", "logs", "--seed", "0"]
    result = run([*train, "-tb", "tb", "--log-interval", "1", "--num-threads", "1"], tmp_path)
    assert_ok(result)
    assert f"Loading hyperparameters from: {zoo.hyperparams_file(algo)}" in result.stdout
    (model_path,) = glob.glob(str(tmp_path / "logs" / algo / f"{env_id}_1" / f"{env_id}.zip"))
    cls = ZOO_ALGOS.get(algo, SAC)
    model = cls.load(model_path)
    assert type(model) is cls and model.num_timesteps == 400
    tags = scalar_tags(tmp_path / "tb")
    # Every algorithm, stock SAC included, logs the episode cost on the package's tasks.
    assert {"rollout/ep_cost_mean", "rollout/ep_violations_mean", "rollout/violation_rate", "train/ent_coef"} <= tags, tags
    if algo == "sac":
        assert not tags & {"train/nu", "train/safety_critic_loss", "train/epsilon"}
    else:
        assert COST_METRICS | {"train/epsilon"} <= tags, tags
    # ... and its monitor CSV has the episode cost c and violating steps v of every episode.
    (monitor,) = glob.glob(str(tmp_path / "logs" / algo / f"{env_id}_1" / "*.monitor.csv"))
    with open(monitor) as file:
        file.readline()
        assert file.readline().strip().split(",") == ["r", "l", "t", "c", "v"]
        rows = [line.split(",") for line in file]
    assert rows and all(float(row[3]) >= 0 and int(row[4]) >= 0 for row in rows)

    enjoy = ["-m", "rl_zoo3.enjoy", "--algo", algo, "--env", env_id, "-f", "logs", "-n", "300", "--no-render"]
    result = run(enjoy, tmp_path)
    assert_ok(result)
    assert "Mean reward" in result.stdout
    assert "Episode Cost:" in result.stdout and "violation rate" in result.stdout


BASELINES = [algo for algo in ZOO_ALGOS if algo != "metasaclag"]


@pytest.mark.parametrize("algo", ["metasaclag", *(pytest.param(algo, marks=pytest.mark.slow) for algo in BASELINES)])
def test_zoo_optimize_with_storage(algo, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["-m", "rl_zoo3.train", "--algo", algo, "--env", "SafeNavigation2D-v0", "-n", "300", "-f", "logs", "-optimize"]
    args += ["--n-trials", "2", "--sampler", "random", "--pruner", "none", "--n-evaluations", "1", "--eval-episodes", "2"]
    args += ["--storage", storage, "--study-name", f"{algo}-study", "--seed", "0", "--no-optim-plots"]
    result = run(args, tmp_path)
    assert_ok(result)
    study = optuna.load_study(study_name=f"{algo}-study", storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 2
    # Each trial keeps the cost of its evaluation beside its reward.
    assert all(t.user_attrs["eval_cost"] >= 0 and 0 <= t.user_attrs["eval_violation_rate"] <= 1 for t in complete)
    expected = optuna.create_study().ask()
    zoo.SAMPLERS[algo](expected, 1, 1, {})
    assert set(complete[0].params) == set(expected.params)  # our sampler, not SAC's
    # Another process (another machine, with a shared database URL) pointed at the same storage adds its trials to the
    # same study: this is how a study is spread over several machines.
    args[args.index("--seed") + 1] = "1"
    assert_ok(run(args, tmp_path))
    assert len(optuna.load_study(study_name=f"{algo}-study", storage=storage).trials) == 4


# ----------------------------------------------------------------------------------------------------------------------
# A regular (non-editable) install, and its uninstall
# ----------------------------------------------------------------------------------------------------------------------


def test_regular_install_registers_and_uninstall_leaves_rl_zoo_intact(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("sb3_metasaclag", "hyperparams", "zoo_hook"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheel_dir = tmp_path / "wheels"
    assert_ok(run(["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(wheel_dir), str(source)]))
    (wheel,) = wheel_dir.glob("sb3_metasaclag-*.whl")
    # A venv that sees this environment's packages only as a plain path (the .pth files there, including the editable
    # install's, are not run), with the wheel installed the regular way.
    venv = tmp_path / "venv"
    assert_ok(run(["-m", "venv", "--without-pip", str(venv)]))
    python = str(venv / "bin" / "python")
    site_packages = Path(run(["-c", "import site; print(site.getsitepackages()[0])"], python=python).stdout.strip())
    (site_packages / "shared.pth").write_text(f"{Path(inspect.getfile(optuna)).parents[1]}\n")
    pip = ["-m", "pip", "--python", python]
    assert_ok(run([*pip, "install", "--no-deps", "--quiet", str(wheel)]))
    assert (site_packages / "sb3_metasaclag_zoo.pth").is_file()
    assert (site_packages / "sb3_metasaclag" / "hyperparams" / "metasaclag.yml").is_file()

    work = tmp_path / "work"
    work.mkdir()
    code = "import sb3_metasaclag.zoo as z, rl_zoo3.utils as u;"
    code += "print(z.__file__, z.hyperparams_dir(), u.ALGOS['saclag'].__name__)"
    result = run(["-c", code], work, python=python)
    assert_ok(result)
    module_file, hyperparams_dir, name = result.stdout.split()
    assert module_file.startswith(str(site_packages)) and hyperparams_dir.startswith(str(site_packages))
    assert name == "SACLag"
    args = ["-m", "rl_zoo3.train", "--algo", "saclag", "--env", "SafeNavigation2D-v0", "-n", "200", "-f", "logs"]
    assert_ok(run(args, work, python=python))
    assert (work / "logs" / "saclag" / "SafeNavigation2D-v0_1" / "SafeNavigation2D-v0.zip").is_file()

    assert_ok(run([*pip, "uninstall", "--yes", "sb3-metasaclag"]))
    assert not (site_packages / "sb3_metasaclag_zoo.pth").exists()
    assert not (site_packages / "_sb3_metasaclag_zoo_hook.py").exists()
    code = "import sys, rl_zoo3.utils as u; print('saclag' in u.ALGOS, 'sac' in u.ALGOS, type(sys.meta_path[0]).__name__)"
    result = run(["-c", code], work, python=python)
    assert_ok(result)
    registered, stock, first_finder = result.stdout.split()
    assert (registered, stock) == ("False", "True") and first_finder != "RLZooFinder"


def test_cost_monitor_sees_the_episodes_hard_constraint_ends(tmp_path):
    """RL Zoo wraps its env_wrapper outside its monitor; on cost-reporting tasks the monitor goes outside instead, so
    that the episodes ended by the first violation (HardConstraint) are recorded, in training, evaluation and enjoy."""
    import numpy as np
    import rl_zoo3.utils
    from rl_zoo3.exp_manager import ExperimentManager

    from sb3_metasaclag.common.wrappers import CostMonitor, HardConstraint

    env_id = "SafePourCoffee-v0"  # hard constraints in hyperparams/*.yml; random arm motions collide within steps
    args = argparse.Namespace(algo="sac", env=env_id)
    manager = ExperimentManager(args, "sac", env_id, str(tmp_path), n_timesteps=100, eval_freq=-1, seed=0, verbose=0)
    manager.setup_experiment()
    assert manager.env_wrapper is not None  # RL Zoo's own attribute is left as it was
    for venv in (manager.create_envs(1), manager.create_envs(1, eval_env=True)):
        env = venv.envs[0]
        assert isinstance(env, CostMonitor) and isinstance(env.env.env, HardConstraint)
        venv.seed(0)
        venv.reset()
        episodes = []
        for _ in range(120):
            _, _, dones, infos = venv.step(np.array([venv.action_space.sample()]))
            if dones[0]:
                episodes.append(infos[0]["episode"])
        assert any(episode["v"] == 1 and episode["l"] < 200 for episode in episodes), episodes
        assert all(episode["v"] <= 1 for episode in episodes)  # each ends at its first violation
    test_env = rl_zoo3.utils.create_test_env(
        env_id, hyperparams={"env_wrapper": "sb3_metasaclag.common.wrappers.HardConstraint"}
    )
    assert isinstance(test_env.venv.envs[0], CostMonitor) and isinstance(test_env.venv.envs[0].env.env, HardConstraint)


def test_every_task_of_the_package_is_cost_monitored_under_rl_zoo():
    # RL Zoo's runs of stock SAC get a CostMonitor only on tasks that report info["cost"] (reports_cost): every task
    # the package registers must be one, or SAC's training violations go uncounted on it.
    import gymnasium as gym

    from sb3_metasaclag.envs import BANDIT_ENV_IDS
    from sb3_metasaclag.zoo import reports_cost

    ours = [env_id for env_id, spec in gym.registry.items() if str(spec.entry_point).startswith("sb3_metasaclag")]
    assert set(BANDIT_ENV_IDS) <= set(ours)
    assert [env_id for env_id in ours if not reports_cost(env_id)] == []
    assert not reports_cost("Pendulum-v1")
