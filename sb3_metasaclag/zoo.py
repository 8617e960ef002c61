"""RL Zoo (rl-zoo3) integration: algorithm names, default hyperparameters and Optuna samplers.

After ``pip install sb3-metasaclag`` (regular or editable) nothing needs to be done: a start-up hook (``zoo_hook/`` in
the repository) calls :func:`patch_rl_zoo_module` while RL Zoo's own modules are imported, so::

    python -m rl_zoo3.train --algo metasaclag --env SafeNavigation2D-v0

works like any built-in algorithm. What the hook adds:

- ``rl_zoo3.utils.ALGOS``: ``metasaclag``, ``saclag``, ``rcpo_sac``, ``rcpo_metasac`` (see :data:`ZOO_ALGOS`); importing
  this package also registers its environments with gymnasium, so no ``--gym-packages`` is needed.
- ``rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER`` / ``HYPERPARAMS_CONVERTER``: the samplers below, for ``-optimize``.
- ``rl_zoo3.exp_manager.ExperimentManager``: without ``-conf``, our algorithms read ``hyperparams/<algo>.yml`` from this
  package. Stock ``sac`` keeps RL Zoo's own file; only for an environment that file has no entry for (ours) does it
  read our ``sac.yml``, so comparing with stock SAC is the same command with ``--algo sac``.
- Cost, for every algorithm (stock ``sac`` included) on the environments that report one (:func:`reports_cost`): the
  envs are monitored by a :class:`~sb3_metasaclag.common.wrappers.CostMonitor` (monitor CSV columns ``c``, the episode
  cost, and ``v``, its violating steps) placed *outside* RL Zoo's ``env_wrapper`` (RL Zoo puts wrappers outside its
  monitor, which then misses the episodes that ``HardConstraint`` ends at the first violation), stock algorithms log
  ``rollout/ep_cost_mean``, ``rollout/ep_violations_mean`` and ``rollout/violation_rate``
  (:class:`~sb3_metasaclag.common.callbacks.CostLoggerCallback`), evaluations record ``eval/mean_cost`` and
  ``eval/violation_rate`` and save ``costs`` and ``violations`` in ``evaluations.npz``
  (:class:`~sb3_metasaclag.common.callbacks.SafeEvalCallback`), ``-optimize`` stores ``eval_cost`` and
  ``eval_violation_rate`` on each Optuna trial, and ``rl_zoo3.enjoy`` prints each episode's cost and the mean cost and
  violation rate at the end.

Programs that import RL Zoo with the hook switched off (``SB3_METASACLAG_DISABLE_ZOO_HOOK=1``) can call
:func:`register_with_rl_zoo` themselves.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from sb3_metasaclag.metasaclag import MetaSACLag
from sb3_metasaclag.rcpo_metasac import RCPOMetaSAC
from sb3_metasaclag.rcpo_sac import RCPOSAC
from sb3_metasaclag.saclag import SACLag

#: The ``--algo`` names this package adds to RL Zoo.
ZOO_ALGOS: dict[str, type[BaseAlgorithm]] = {
    "metasaclag": MetaSACLag,
    "saclag": SACLag,
    "rcpo_sac": RCPOSAC,
    "rcpo_metasac": RCPOMetaSAC,
}

#: Network sizes the samplers choose from (RL Zoo's names for the same sizes).
NET_ARCHS: dict[str, list[int]] = {"small": [64, 64], "medium": [256, 256], "big": [400, 300]}

_PATCHED_MARK = "_sb3_metasaclag_patched"


def hyperparams_dir() -> Path:
    """Directory of the default hyperparameter files.

    A regular install ships the repository's top-level ``hyperparams/`` inside the package; an editable install reads it
    from the source tree.
    """
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "hyperparams", package_dir.parent / "hyperparams"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"sb3-metasaclag's hyperparams/ directory is missing (looked in {package_dir} and its parent)")


def hyperparams_file(algo: str) -> Path:
    """Path of the default hyperparameter file of ``algo`` (one of :data:`ZOO_ALGOS`, or ``"sac"``)."""
    if algo not in ZOO_ALGOS and algo != "sac":
        raise ValueError(f"No sb3-metasaclag hyperparameters for algo {algo!r}: expected one of {[*ZOO_ALGOS, 'sac']}")
    return hyperparams_dir() / f"{algo}.yml"


def _yaml_keys(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    with open(path) as file:
        return set(yaml.safe_load(file) or {})


def default_config(algo: str, env_id: str, zoo_config: str | None = None) -> Path | None:
    """The hyperparameter file RL Zoo should read when no ``-conf`` is given, or ``None`` to keep RL Zoo's own.

    :param algo: RL Zoo's ``--algo``.
    :param env_id: The environment id.
    :param zoo_config: The file RL Zoo would read (its package default); for ``sac`` it is kept whenever it has an entry
        for ``env_id``.
    """
    if algo in ZOO_ALGOS:
        return hyperparams_file(algo)
    if algo == "sac":
        ours = hyperparams_file("sac")
        if env_id in _yaml_keys(ours) and (zoo_config is None or env_id not in _yaml_keys(Path(zoo_config))):
            return ours
    return None


# ----------------------------------------------------------------------------------------------------------------------
# Optuna samplers. They sample what the user would otherwise tune by hand - learning rates of the inner (actor, critics,
# nu) and outer (epsilon, alpha) steps, the initial multiplier nu, gamma_c and the network size - and leave alone what an
# algorithm tunes by itself (Meta SAC-Lag's epsilon and alpha; the SAC v2 temperature of the baselines).
# ----------------------------------------------------------------------------------------------------------------------


def _suggest_common(trial: Any) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 2e-3, log=True),
        "nu_learning_rate": trial.suggest_float("nu_learning_rate", 1e-4, 1e-1, log=True),
        "nu": trial.suggest_float("nu", 0.1, 1000.0, log=True),
        "one_minus_gamma_c": trial.suggest_float("one_minus_gamma_c", 1e-3, 0.1, log=True),
        "net_arch": trial.suggest_categorical("net_arch", list(NET_ARCHS)),
    }


#: Sampled parameters that are settings of Meta SAC-Lag's outer rule (metasaclag/outer_rules.py), not arguments.
_RULE_LEARNING_RATES = ("epsilon_learning_rate", "alpha_learning_rate")


def convert_safe_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """Turn the raw parameters of a trial into constructor arguments (RL Zoo's ``HYPERPARAMS_CONVERTER`` contract).

    ``one_minus_gamma_c`` becomes ``gamma_c``, ``net_arch`` (a size name) becomes ``policy_kwargs`` and the outer
    rule's learning rates (``epsilon_learning_rate``, ``alpha_learning_rate``) go into ``outer_rule_kwargs``; the rest
    passes through unchanged.
    """
    hyperparams = dict(sampled_params)
    rule = {key: hyperparams.pop(key) for key in _RULE_LEARNING_RATES if key in hyperparams}
    if rule:
        hyperparams["outer_rule_kwargs"] = rule
    if "one_minus_gamma_c" in hyperparams:
        hyperparams["gamma_c"] = 1.0 - hyperparams.pop("one_minus_gamma_c")
    if "net_arch" in hyperparams:
        name = hyperparams.pop("net_arch")
        if name not in NET_ARCHS:
            raise ValueError(f"Unknown net_arch {name!r}: expected one of {list(NET_ARCHS)}")
        hyperparams["policy_kwargs"] = {"net_arch": list(NET_ARCHS[name])}
    return hyperparams


def sample_metasaclag_params(trial: Any, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """MetaSACLag: inner and outer learning rates, initial ``nu``, ``gamma_c``, network size (not ``epsilon``/``alpha``)."""
    params = _suggest_common(trial)
    params["epsilon_learning_rate"] = trial.suggest_float("epsilon_learning_rate", 1e-4, 1e-1, log=True)
    params["alpha_learning_rate"] = trial.suggest_float("alpha_learning_rate", 1e-4, 1e-2, log=True)
    return convert_safe_params(params)


def sample_fixed_threshold_params(trial: Any, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """SACLag and RCPOSAC: learning rates, initial ``nu``, ``gamma_c``, network size and the fixed threshold ``epsilon``."""
    params = _suggest_common(trial)
    params["epsilon"] = trial.suggest_float("epsilon", 0.05, 1.0)
    return convert_safe_params(params)


def sample_rcpo_metasac_params(trial: Any, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """RCPOMetaSAC: as the fixed-threshold baselines, plus the learning rate of its meta-gradient ``alpha`` step."""
    params = _suggest_common(trial)
    params["epsilon"] = trial.suggest_float("epsilon", 0.05, 1.0)
    params["alpha_learning_rate"] = trial.suggest_float("alpha_learning_rate", 1e-4, 1e-2, log=True)
    return convert_safe_params(params)


SAMPLERS = {
    "metasaclag": sample_metasaclag_params,
    "saclag": sample_fixed_threshold_params,
    "rcpo_sac": sample_fixed_threshold_params,
    "rcpo_metasac": sample_rcpo_metasac_params,
}


# ----------------------------------------------------------------------------------------------------------------------
# Patching RL Zoo's modules (called by the start-up hook, or by register_with_rl_zoo)
# ----------------------------------------------------------------------------------------------------------------------


def _register_algos(algos: dict[str, Any]) -> None:
    for name, cls in ZOO_ALGOS.items():
        if algos.get(name, cls) is not cls:
            raise RuntimeError(f"RL Zoo already has an algorithm named {name!r} ({algos[name]!r}); not replacing it")
        algos[name] = cls


def _register_samplers(samplers: dict[str, Any], converters: dict[str, Any]) -> None:
    for name, sampler in SAMPLERS.items():
        samplers.setdefault(name, sampler)
        converters.setdefault(name, convert_safe_params)


def _patch_experiment_manager(cls: type) -> None:
    original = cls.__init__  # type: ignore[misc]
    if getattr(original, _PATCHED_MARK, False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        arguments = signature.bind(self, *args, **kwargs).arguments
        if arguments.get("config") is None:
            config = default_config(str(arguments["algo"]), str(arguments["env_id"]), getattr(self, "config", None))
            if config is not None:
                self.config = str(config)

    setattr(__init__, _PATCHED_MARK, True)
    cls.__init__ = __init__  # type: ignore[misc]


def reports_cost(env_id: str) -> bool:
    """Whether ``env_id`` reports ``info["cost"]``: the package's tasks and Safety-Gymnasium's ``...Gymnasium-v*`` ids."""
    from sb3_metasaclag.envs import BANDIT_ENV_IDS, BUILTIN_ENV_IDS, ROBOTICS_ENV_IDS

    name = env_id.split(":")[-1]
    ours = (*BUILTIN_ENV_IDS, *BANDIT_ENV_IDS, *ROBOTICS_ENV_IDS)
    return name in ours or (name.startswith("Safety") and "Gymnasium" in name)


@contextlib.contextmanager
def _cost_monitoring(inner_wrapper: Any = None) -> Iterator[None]:
    """Within the block, SB3's ``make_vec_env`` wraps each env in a ``CostMonitor`` instead of a plain ``Monitor``, with
    ``inner_wrapper`` (RL Zoo's ``env_wrapper``) applied *inside* it: a monitor outside ``HardConstraint`` would never
    see the episodes that the first violation ends (RL Zoo puts its wrappers outside the monitor)."""
    import stable_baselines3.common.env_util as env_util

    from sb3_metasaclag.common.wrappers import CostMonitor

    def monitor(env: Any, *args: Any, **kwargs: Any) -> CostMonitor:
        return CostMonitor(env if inner_wrapper is None else inner_wrapper(env), *args, **kwargs)

    saved = env_util.Monitor
    env_util.Monitor = monitor  # type: ignore[misc, assignment]
    try:
        yield
    finally:
        env_util.Monitor = saved  # type: ignore[misc]


class VecCostReporter(VecEnvWrapper):
    """Print the cost and violating steps of every finished episode, and their means when the env is closed (what
    ``rl_zoo3.enjoy`` prints for rewards). Needs a ``CostMonitor`` inside."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.costs: list[float] = []
        self.violations: list[int] = []

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        for done, info in zip(dones, infos):
            episode = info.get("episode") if done else None
            if episode is not None and "c" in episode:
                self.costs.append(float(episode["c"]))
                self.violations.append(int(episode["v"]))
                print(f"Episode Cost: {episode['c']:.2f} (violating steps: {int(episode['v'])})")
        return obs, rewards, dones, infos

    def close(self) -> None:
        if self.costs:
            print(
                f"{len(self.costs)} Episodes: mean cost {np.mean(self.costs):.2f} +/- {np.std(self.costs):.2f}, "
                f"violation rate {100 * np.mean(np.asarray(self.violations) > 0):.1f}% of episodes, "
                f"{np.mean(self.violations):.2f} violating steps per episode"
            )
        self.venv.close()


def _patch_create_test_env(module: ModuleType) -> None:
    original = module.create_test_env  # type: ignore[attr-defined]
    if getattr(original, _PATCHED_MARK, False):
        return

    signature = inspect.signature(original)

    @functools.wraps(original)
    def create_test_env(env_id: str, *args: Any, **kwargs: Any) -> VecEnv:
        if not reports_cost(str(env_id)):
            return original(env_id, *args, **kwargs)
        arguments = signature.bind(env_id, *args, **kwargs).arguments
        hyperparams = dict(arguments.get("hyperparams") or {})
        wrapper = module.get_wrapper_class(hyperparams) if "env_wrapper" in hyperparams else None
        hyperparams.pop("env_wrapper", None)  # applied inside the monitor instead
        arguments["hyperparams"] = hyperparams
        with _cost_monitoring(wrapper):
            return VecCostReporter(original(**arguments))

    setattr(create_test_env, _PATCHED_MARK, True)
    module.create_test_env = create_test_env  # type: ignore[attr-defined]


def _safe_eval_callback(callback: EvalCallback) -> EvalCallback:
    """The same evaluation as ``callback`` (RL Zoo's), as a cost-recording ``SafeEvalCallback``."""
    from sb3_metasaclag.common.callbacks import SafeEvalCallback

    return SafeEvalCallback(
        callback.eval_env,
        callback_on_new_best=callback.callback_on_new_best,
        n_eval_episodes=callback.n_eval_episodes,
        eval_freq=callback.eval_freq,
        log_path=None if callback.log_path is None else str(Path(callback.log_path).parent),
        best_model_save_path=callback.best_model_save_path,
        deterministic=callback.deterministic,
        render=callback.render,
        verbose=callback.verbose,
        warn=callback.warn,
    )


def _patch_cost_recording(cls: type) -> None:
    """Cost monitoring, logging and evaluation for every algorithm on the environments that report a cost."""
    create_envs = cls.create_envs  # type: ignore[attr-defined]
    if getattr(create_envs, _PATCHED_MARK, False):
        return
    create_callbacks = cls.create_callbacks  # type: ignore[attr-defined]

    @functools.wraps(create_envs)
    def create_envs_with_cost(self: Any, *args: Any, **kwargs: Any) -> VecEnv:
        if not reports_cost(self.env_name.gym_id):
            return create_envs(self, *args, **kwargs)
        wrapper, self.env_wrapper = self.env_wrapper, None  # applied inside the monitor instead
        try:
            with _cost_monitoring(wrapper):
                return create_envs(self, *args, **kwargs)
        finally:
            self.env_wrapper = wrapper

    @functools.wraps(create_callbacks)
    def create_callbacks_with_cost(self: Any) -> None:
        create_callbacks(self)
        if not reports_cost(self.env_name.gym_id):
            return
        from sb3_metasaclag.common.callbacks import CostLoggerCallback

        self.callbacks = [
            _safe_eval_callback(callback) if type(callback) is EvalCallback else callback for callback in self.callbacks
        ]
        if self.algo not in ZOO_ALGOS:  # the package's algorithms log the cost by themselves
            self.callbacks.append(CostLoggerCallback())

    for function in (create_envs_with_cost, create_callbacks_with_cost):
        setattr(function, _PATCHED_MARK, True)
    cls.create_envs = create_envs_with_cost  # type: ignore[attr-defined]
    cls.create_callbacks = create_callbacks_with_cost  # type: ignore[attr-defined]


def _cost_trial_eval_callback(base: type) -> type:
    """RL Zoo's ``TrialEvalCallback`` (``-optimize``) that also stores the evaluation cost on the Optuna trial."""
    if getattr(base, _PATCHED_MARK, False):
        return base

    from sb3_metasaclag.common.callbacks import CostEvaluationMixin

    class CostTrialEvalCallback(CostEvaluationMixin, base):  # type: ignore[valid-type, misc]
        """Also sets the trial's user attributes ``eval_cost`` and ``eval_violation_rate`` (share of evaluation
        episodes with a violating step) after every evaluation, and logs them as ``eval/mean_cost`` and
        ``eval/violation_rate``."""

        def _on_cost_evaluation(self, mean_cost: float, violation_rate: float) -> None:
            self.trial.set_user_attr("eval_cost", mean_cost)
            self.trial.set_user_attr("eval_violation_rate", violation_rate)

    setattr(CostTrialEvalCallback, _PATCHED_MARK, True)
    CostTrialEvalCallback.__name__ = base.__name__
    return CostTrialEvalCallback


def patch_rl_zoo_module(module: ModuleType) -> None:
    """Add this package to one of RL Zoo's modules right after it was imported (idempotent).

    :param module: ``rl_zoo3.utils`` (algorithms, cost reports of ``enjoy``), ``rl_zoo3.hyperparams_opt`` (samplers) or
        ``rl_zoo3.exp_manager`` (default hyperparameter files, cost recording); any other module is left alone.
    """
    name = module.__name__
    if name == "rl_zoo3.utils":
        _register_algos(module.ALGOS)
        _patch_create_test_env(module)
    elif name == "rl_zoo3.hyperparams_opt":
        _register_samplers(module.HYPERPARAMS_SAMPLER, module.HYPERPARAMS_CONVERTER)
    elif name == "rl_zoo3.exp_manager":
        _patch_experiment_manager(module.ExperimentManager)
        _patch_cost_recording(module.ExperimentManager)
        module.TrialEvalCallback = _cost_trial_eval_callback(module.TrialEvalCallback)  # type: ignore[attr-defined]


def register_with_rl_zoo() -> None:
    """Register with RL Zoo explicitly (the start-up hook does this by itself; idempotent).

    Needed only when the hook is switched off. It must run before RL Zoo builds its command-line parser.
    """
    import rl_zoo3.exp_manager
    import rl_zoo3.hyperparams_opt
    import rl_zoo3.utils

    for module in (rl_zoo3.utils, rl_zoo3.hyperparams_opt, rl_zoo3.exp_manager):
        patch_rl_zoo_module(module)
