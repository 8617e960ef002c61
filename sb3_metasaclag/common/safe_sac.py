"""What the four algorithms of the package share: a SAC-style off-policy learner with safety critics and a Lagrangian.

:class:`SafeSACBase` owns the plumbing (routing transitions to ``D`` / ``D_s``, feeding ``D_0``, the cost monitors,
argument checks, the Lagrange multiplier ``nu``, the threshold ``epsilon``, the temperature ``alpha``, saving and
loading). The critic losses are the plain functions :func:`safety_critic_loss` and :func:`reward_critic_loss`. Each
algorithm writes its gradient step out in its own ``train`` (``MetaSACLag.train`` in ``metasaclag/metasaclag.py``,
``SACLag.train`` in ``saclag/saclag.py``).
"""

from __future__ import annotations

import math
import os
import pathlib
import uuid
import warnings
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy, ContinuousCritic
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import get_parameters_by_name, polyak_update
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.patch_gym import _patch_env
from stable_baselines3.sac.policies import Actor
from torch.nn import functional as F

from sb3_metasaclag.common.buffers import (
    ConstraintDictReplayBuffer,
    ConstraintReplayBuffer,
    ConstraintReplayBufferSamples,
    constraint_buffer_class,
)
from sb3_metasaclag.common.callbacks import record_episode_costs
from sb3_metasaclag.common.costs import get_costs
from sb3_metasaclag.common.lagrangian import LagrangeMultiplier
from sb3_metasaclag.common.policies import CnnPolicy, MlpPolicy, MultiInputPolicy, SafeSACPolicy
from sb3_metasaclag.common.wrappers import CostMonitor, VecCostMonitor

__all__ = ["SafeSACBase", "optimizer_step", "reward_critic_loss", "safety_critic_loss"]

SelfSafeSACBase = TypeVar("SelfSafeSACBase", bound="SafeSACBase")

#: The version of this package (saved with every model; ``load`` reads files of this version only).
PACKAGE_VERSION = (pathlib.Path(__file__).resolve().parents[1] / "version.txt").read_text().strip()

POLICY_BATCHES = ("non_violating", "all")


def _find_vec_cost_monitor(env: VecEnv) -> VecCostMonitor | None:
    """The :class:`VecCostMonitor` among the VecEnv wrappers of ``env``, if any."""
    while isinstance(env, VecEnvWrapper):
        if isinstance(env, VecCostMonitor):
            return env
        env = env.venv
    return None


def check_range(name: str, value: float, low: float, high: float, low_open: bool = False, high_open: bool = False) -> None:
    """Raise a ValueError that names the expected interval unless ``value`` lies in it (NaN never does)."""
    ok = not math.isnan(value)
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {value}")


def _atomic_write(path: str | os.PathLike, suffix: str, write: Any) -> None:
    """Call ``write(file)`` on a temporary file beside ``path`` (``.suffix`` added when ``path`` has none, as SB3 does), then
    rename the temporary file over ``path``; on any failure remove it and leave ``path`` as it was."""
    final = pathlib.Path(path)
    if final.suffix == "":
        final = final.with_name(f"{final.name}.{suffix}")
    if final.is_dir():
        raise IsADirectoryError(f"Cannot save to {final}: it is a directory")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"Cannot save to {final}: cannot create its directory ({error})") from error
    temporary = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.{suffix}")
    try:
        # A file object, not a path: SB3's path handling retries forever where a file cannot be created (/proc).
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, final)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OSError(
                error.errno, f"Cannot save to {final} ({error.strerror or error}); {final} was left as it was"
            ) from error
        raise


def _resolve(path: Any, suffix: str) -> Any:
    """A path as SB3's loaders resolve it: ``path`` if it exists, else ``path`` + ``suffix`` (file objects as given)."""
    if isinstance(path, (str, os.PathLike)):
        path = os.fspath(path)
        if not os.path.exists(path) and not path.endswith(suffix):
            return f"{path}{suffix}"
    return path


def check_model_file(path: Any) -> None:
    """Raise a ValueError that names the file and what is wrong with it unless it is a readable model archive: a zip
    with the hyperparameters (``data``) and the network parameters (``policy.pth``), every member intact."""
    import zipfile

    path = _resolve(path, ".zip")
    if not isinstance(path, str):
        return  # a file object: SB3's load reads it as it is
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"Cannot load {path}: the file is empty (0 bytes); was its save interrupted?")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"Cannot load {path}: it is not a zip archive (a model saved by save() is one): the file is truncated or "
            "of another format"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            damaged = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"Cannot load {path}: the zip archive is damaged ({error})") from error
    if damaged is not None:
        raise ValueError(f"Cannot load {path}: its member {damaged!r} is damaged (CRC check failed)")
    missing = [f"{name!r} ({what})" for name, what in (("data", "the hyperparameters"), ("policy.pth", "the network "
               "parameters")) if name not in names]  # fmt: skip
    if len(missing) == 2:  # a truncated model file can still show the zip archive of its own policy.pth
        raise ValueError(
            f"Cannot load {path}: it is not a model saved by save() (the file is truncated or another zip archive): it "
            f"has no {' and no '.join(missing)}"
        )
    if missing:
        raise ValueError(f"Cannot load {path}: the archive has no {missing[0]}")


def _saved_data(path: Any) -> dict[str, Any] | None:
    """A model file's ``data`` (its hyperparameters as JSON), read without unpickling anything (None when the file
    cannot be read here: SB3's own ``load`` then reports the problem)."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(_resolve(path, ".zip")) as archive:  # the path as SB3's load resolves it
            data = json.loads(archive.read("data"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return data if isinstance(data, dict) else None


def _saved_algorithm(data: dict[str, Any]) -> str:
    """The algorithm that saved a model file, from its ``data``."""
    if "algorithm" in data or "violation_threshold" in data:
        return str(data.get("algorithm", "an unnamed algorithm of sb3-metasaclag"))
    policy = data.get("policy_class", {})
    module = policy.get("__module__", "") if isinstance(policy, dict) else ""
    return "SAC" if module == "stable_baselines3.sac.policies" else f"an algorithm of another library ({module or '?'})"


def check_sac_only_arguments(
    algorithm: str,
    replay_buffer_class: type | None,
    use_sde: bool,
    optimize_memory_usage: bool,
    sde_support: bool = False,
) -> None:
    """SAC arguments the constrained algorithms accept, with SAC's defaults, and refuse otherwise with the reason."""
    if replay_buffer_class is not None and not (
        isinstance(replay_buffer_class, type) and issubclass(replay_buffer_class, ConstraintReplayBuffer)
    ):
        name = getattr(replay_buffer_class, "__name__", repr(replay_buffer_class))
        raise ValueError(
            f"{algorithm} needs a constraint-aware replay buffer (ConstraintReplayBuffer or a subclass: it keeps the "
            f"violating transitions D_s and the initial states D_0 apart), got {name}. HerReplayBuffer relabels goals "
            "without the costs; train goal-conditioned tasks with the default buffer and MultiInputPolicy."
        )
    if use_sde and not sde_support:
        raise ValueError(
            f"{algorithm} does not support gSDE (use_sde=True): its meta-gradients are derived for SAC's squashed "
            "Gaussian with independent noise at each step; use use_sde=False (the default), or SACLag / RCPOSAC, "
            "which take gSDE as SAC does"
        )
    if optimize_memory_usage:
        raise ValueError(
            f"{algorithm} does not support optimize_memory_usage=True: SB3's memory-efficient layout reads a next "
            "observation from the following row, which needs timeouts treated as terminal (handle_timeout_termination="
            "False), and the constraint-aware buffer keeps them non-terminal; use optimize_memory_usage=False (the default)"
        )


def check_whole(name: str, value: Any, low: int) -> None:
    """Raise a ValueError that names the argument unless ``value`` is a whole number (not a bool) ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")


def check_arguments(
    *,
    batch_size: int,
    buffer_size: int,
    learning_starts: int,
    gradient_steps: int,
    tau: float,
    gamma: float,
    target_update_interval: int,
    gamma_c: float,
    nu: float,
    nu_learning_rate: float,
    epsilon: float,
    epsilon_max: float,
    policy_batch: str,
    violation_threshold: float,
    n_initial_states: int,
    initial_state_batch_size: int,
    rmsprop_kwargs: dict[str, Any] | None,
    replay_buffer_kwargs: dict[str, Any] | None,
    stats_window_size: int,
) -> None:
    """Raise a ValueError that names the argument and its allowed range unless every argument is valid (called when
    the model is set up, by the constructor and by ``load`` alike)."""
    check_whole("batch_size", batch_size, 1)
    check_whole("buffer_size", buffer_size, 1)
    check_whole("learning_starts", learning_starts, 0)
    check_whole("gradient_steps", gradient_steps, -1)  # -1: as many as environment steps (SB3)
    check_whole("target_update_interval", target_update_interval, 1)
    check_whole("stats_window_size", stats_window_size, 1)
    check_range("tau", tau, 0.0, 1.0)
    check_range("gamma", gamma, 0.0, 1.0)
    check_range("gamma_c", gamma_c, 0.0, 1.0, high_open=True)
    check_range("nu", nu, 0.0, math.inf, high_open=True)
    check_range("nu_learning_rate", nu_learning_rate, 0.0, math.inf, low_open=True, high_open=True)
    # epsilon bounds E[Qc], a discounted probability of a future violation: it lies in [0, 1].
    check_range("epsilon_max", epsilon_max, 0.0, 1.0, low_open=True)
    check_range("epsilon", epsilon, 0.0, epsilon_max)
    check_range("violation_threshold", violation_threshold, 0.0, math.inf, high_open=True)
    if policy_batch not in POLICY_BATCHES:
        raise ValueError(f"policy_batch must be one of {POLICY_BATCHES}, got {policy_batch!r}")
    check_whole("n_initial_states", n_initial_states, 0)
    check_whole("initial_state_batch_size", initial_state_batch_size, 1)
    rmsprop = dict(rmsprop_kwargs or {})
    allowed = {"alpha", "eps", "weight_decay", "momentum", "centered", "foreach"}
    if set(rmsprop) - allowed:
        raise ValueError(
            f"rmsprop_kwargs takes torch.optim.RMSprop's {sorted(allowed)} (lr comes from the learning rates, the "
            f"direction from the algorithm), got {sorted(rmsprop)}"
        )
    # alpha is the decay of RMSProp's second moment: 1 or more never lets it grow (or lets it go negative).
    check_range("rmsprop_kwargs['alpha']", float(rmsprop.get("alpha", 0.99)), 0.0, 1.0, high_open=True)
    check_range("rmsprop_kwargs['eps']", float(rmsprop.get("eps", 1e-8)), 0.0, math.inf, low_open=True, high_open=True)
    check_range("rmsprop_kwargs['momentum']", float(rmsprop.get("momentum", 0.0)), 0.0, 1.0, high_open=True)
    check_range("rmsprop_kwargs['weight_decay']", float(rmsprop.get("weight_decay", 0.0)), 0.0, math.inf, high_open=True)
    for key in ("safety_buffer_size", "initial_state_buffer_size"):
        size = (replay_buffer_kwargs or {}).get(key)
        if size is not None:
            check_whole(f"replay_buffer_kwargs[{key!r}]", size, 1)


def safety_critic_loss(
    safety_critic: ContinuousCritic,
    safety_critic_target: ContinuousCritic,
    data: ConstraintReplayBufferSamples,
    next_actions: th.Tensor,
    gamma_c: float,
) -> th.Tensor:
    """The twin safety critics' loss (Eq. 2): the target ``c + gamma_c (1 - c)(1 - done) max_j Qc_target_j(s', a')``,
    with ``c`` the violation indicator and ``a'`` the actor's actions at ``data.next_observations``."""
    with th.no_grad():
        next_qc = th.cat(safety_critic_target(data.next_observations, next_actions), dim=1).amax(dim=1, keepdim=True)
        target = data.violations + gamma_c * (1 - data.violations) * (1 - data.dones) * next_qc
    loss = 0.5 * sum(F.mse_loss(q, target) for q in safety_critic(data.observations, data.actions))
    assert isinstance(loss, th.Tensor)
    return loss


def reward_critic_loss(
    critic: ContinuousCritic,
    critic_target: ContinuousCritic,
    data: ConstraintReplayBufferSamples,
    next_actions: th.Tensor,
    next_log_prob: th.Tensor,
    alpha: th.Tensor,
    gamma: float,
) -> th.Tensor:
    """The twin reward critics' loss, SAC's soft target ``r + gamma (1 - done)(min_j Q_target_j(s', a') - alpha log
    pi(a'|s'))`` (Eq. 5)."""
    with th.no_grad():
        next_q = th.cat(critic_target(data.next_observations, next_actions), dim=1).amin(dim=1, keepdim=True)
        next_q = next_q - alpha * next_log_prob.reshape(-1, 1)
        target = data.rewards + (1 - data.dones) * gamma * next_q
    loss = 0.5 * sum(F.mse_loss(q, target) for q in critic(data.observations, data.actions))
    assert isinstance(loss, th.Tensor)
    return loss


def optimizer_step(optimizer: th.optim.Optimizer, loss: th.Tensor) -> None:
    """``zero_grad``, ``backward``, ``step``: one step of ``optimizer`` on ``loss``."""
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


class SafeSACBase(OffPolicyAlgorithm):
    """Base class of the SAC-Lagrangian family (not used directly; see ``MetaSACLag``, ``SACLag``, ``RCPOSAC`` ...).

    Arguments shared with SB3's ``SAC`` keep their meaning and defaults. The safety arguments:

    :param gamma_c: Discount ``gamma_c`` of the safety critic (Eq. 2).
    :param nu: Initial Lagrange multiplier ``nu``.
    :param nu_learning_rate: Learning rate of ``nu``'s RMSProp.
    :param epsilon: (Initial) safety threshold ``epsilon`` on ``E[Qc]``.
    :param epsilon_max: Upper bound of ``epsilon`` (``Qc`` is a discounted probability, so 1 by default).
    :param policy_batch: Transitions of the batch ``B`` (reward critics, ``nu`` and the actor) and of ``B'``:
        ``"all"`` (default) draws uniformly from every transition, ``D u D_s`` (Appendix B: "the main replay buffer
        D stores all the transitions"), so that the reward critics see the episodes that end in a violation;
        ``"non_violating"`` draws from ``D`` only (Algorithm 1, lines 7-10: ``D`` holds the transitions with
        ``c = 0``). Each transition is stored once either way.
    :param violation_threshold: A transition violates the constraint when ``info["cost"]`` exceeds it.
    :param n_initial_states: Reset observations collected into ``D_0`` before learning (then one per episode).
    :param initial_state_batch_size: Batch size drawn from ``D_0``.
    :param rmsprop_kwargs: ``torch.optim.RMSprop`` settings (``alpha``, ``eps``, ...) of every RMSProp optimizer.

    ``replay_buffer_kwargs`` takes the buffer's own settings: ``safety_buffer_size`` (capacity of ``D_s``) and
    ``initial_state_buffer_size`` (capacity of ``D_0``, 10,000 by default).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {  # type: ignore[misc]
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: SafeSACPolicy
    actor: Actor
    critic: ContinuousCritic
    critic_target: ContinuousCritic
    safety_critic: ContinuousCritic
    safety_critic_target: ContinuousCritic
    replay_buffer: ConstraintReplayBuffer  # type: ignore[assignment]
    lagrangian: LagrangeMultiplier
    epsilon: th.Tensor
    log_ent_coef: th.Tensor
    #: Differentiate nu' through its projection as if it were absent (MetaSACLag's nu_derivative="straight_through").
    lagrangian_straight_through: bool = False
    #: Whether gSDE (``use_sde=True``) is accepted: SACLag and RCPOSAC, whose Lagrangian step leaves SAC's actor as it is.
    supports_sde: ClassVar[bool] = False

    def __init__(
        self,
        policy: str | type[SafeSACPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        target_update_interval: int = 1,
        gamma_c: float = 0.99,
        nu: float = 10.0,
        nu_learning_rate: float = 1e-2,
        epsilon: float = 1.0,
        epsilon_max: float = 1.0,
        policy_batch: Literal["non_violating", "all"] = "all",
        violation_threshold: float = 0.0,
        n_initial_states: int = 32,
        initial_state_batch_size: int = 256,
        rmsprop_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        replay_buffer_class: type[ConstraintReplayBuffer] | None = None,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
        optimize_memory_usage: bool = False,
        _init_setup_model: bool = True,
    ) -> None:
        sde_asked = use_sde or bool((policy_kwargs or {}).get("use_sde", False))
        check_sac_only_arguments(type(self).__name__, replay_buffer_class, sde_asked, optimize_memory_usage, self.supports_sde)
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise,
            replay_buffer_class=replay_buffer_class,  # None: chosen from the observation space in _setup_model
            replay_buffer_kwargs=replay_buffer_kwargs,
            # A copy: SB3 writes use_sde into the dict it is given, which a caller may share with other models.
            policy_kwargs=dict(policy_kwargs or {}),
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            use_sde_at_warmup=use_sde_at_warmup,
            sde_support=self.supports_sde,
            support_multi_env=True,
            supported_action_spaces=(spaces.Box,),
        )
        self.target_update_interval = target_update_interval
        self.violation_threshold = float(violation_threshold)
        self.policy_batch = policy_batch
        self.gamma_c = float(gamma_c)
        self.initial_nu = float(nu)
        self.nu_learning_rate = float(nu_learning_rate)
        self.initial_epsilon = float(epsilon)
        self.epsilon_max = float(epsilon_max)
        self.n_initial_states = int(n_initial_states)
        self.initial_state_batch_size = int(initial_state_batch_size)
        self.rmsprop_kwargs = dict(rmsprop_kwargs or {})
        #: Saved with the model, so that ``load`` can say which algorithm and version a file belongs to.
        self.algorithm = type(self).__name__
        self.package_version = PACKAGE_VERSION
        self._warned_empty_non_violating = False
        if _init_setup_model:
            self._setup_model()

    # Set-up ---------------------------------------------------------------------------------------------------------
    def _setup_model(self) -> None:
        # Here rather than in the constructor, so that load(), which sets the attributes from a file without the
        # constructor's arguments, goes through the same checks.
        check_arguments(
            batch_size=self.batch_size,
            buffer_size=self.buffer_size,
            learning_starts=self.learning_starts,
            gradient_steps=self.gradient_steps,
            tau=self.tau,
            gamma=self.gamma,
            target_update_interval=self.target_update_interval,
            gamma_c=self.gamma_c,
            nu=self.initial_nu,
            nu_learning_rate=self.nu_learning_rate,
            epsilon=self.initial_epsilon,
            epsilon_max=self.epsilon_max,
            policy_batch=self.policy_batch,
            violation_threshold=self.violation_threshold,
            n_initial_states=self.n_initial_states,
            initial_state_batch_size=self.initial_state_batch_size,
            rmsprop_kwargs=self.rmsprop_kwargs,
            replay_buffer_kwargs=self.replay_buffer_kwargs,
            stats_window_size=self._stats_window_size,
        )
        if self.replay_buffer_class in (None, ConstraintReplayBuffer, ConstraintDictReplayBuffer):
            # As SAC picks ReplayBuffer or DictReplayBuffer from the observation space.
            self.replay_buffer_class = constraint_buffer_class(self.observation_space)
        self.replay_buffer_kwargs = {"violation_threshold": self.violation_threshold, **self.replay_buffer_kwargs}
        super()._setup_model()
        self._create_aliases()
        self.batch_norm_stats = get_parameters_by_name(self.critic, ["running_"])
        self.batch_norm_stats_target = get_parameters_by_name(self.critic_target, ["running_"])
        self._target_pairs: tuple[list[th.Tensor], list[th.Tensor]] | None = None  # built at the first Polyak update
        self.lagrangian = LagrangeMultiplier(
            self.initial_nu,
            self.nu_learning_rate,
            self.rmsprop_kwargs,
            self.device,
            self.lagrangian_straight_through,
        )
        self.epsilon = th.tensor(self.initial_epsilon, device=self.device, requires_grad=True)
        self._setup_entropy()
        self._setup_meta_learning()

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target
        self.safety_critic = self.policy.safety_critic
        self.safety_critic_target = self.policy.safety_critic_target

    def _setup_entropy(self) -> None:
        """Create ``log_ent_coef`` (log alpha) and its optimizer, if any. Overridden by each algorithm."""
        raise NotImplementedError

    def _setup_meta_learning(self) -> None:
        """Create what the outer (meta-gradient) steps need once the policy exists (default: nothing)."""

    @staticmethod
    def _wrap_env(env: GymEnv, verbose: int = 0, monitor_wrapper: bool = True) -> VecEnv:
        """SB3's wrapping, with a :class:`CostMonitor` instead of a plain ``Monitor``: episode infos and monitor files
        then carry the episode cost ``c`` and violation count ``v``, counted with the algorithm's
        ``violation_threshold`` (taken at ``learn()``; a ``CostMonitor`` you made yourself keeps its own)."""
        if not isinstance(env, VecEnv) and monitor_wrapper:
            env = _patch_env(env)
            if not is_wrapped(env, Monitor):
                env = CostMonitor(env)
                env.made_by_algorithm = True
        vec_env = OffPolicyAlgorithm._wrap_env(env, verbose, monitor_wrapper)
        # A VecEnv built without a CostMonitor in each environment gets the same bookkeeping as a whole.
        if monitor_wrapper and _find_vec_cost_monitor(vec_env) is None and not all(vec_env.env_is_wrapped(CostMonitor)):
            vec_env = VecCostMonitor(vec_env)
            vec_env.made_by_algorithm = True
        return vec_env

    # Current values -------------------------------------------------------------------------------------------------
    @property
    def alpha(self) -> th.Tensor:
        """The entropy temperature ``alpha`` (``exp(log_ent_coef)``, in the graph)."""
        return self.log_ent_coef.exp()

    @property
    def nu(self) -> th.Tensor:
        """The Lagrange multiplier ``nu``."""
        return self.lagrangian.nu

    # Data collection ------------------------------------------------------------------------------------------------
    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, Any]:
        assert self.env is not None, "You must set the environment before calling learn()"
        # Algorithm 1, line 2: pre-fill D_0 with reset observations.
        missing = self.n_initial_states - self.replay_buffer.initial_states.size()
        for _ in range(math.ceil(max(missing, 0) / self.n_envs)):
            self.replay_buffer.add_initial_states(self._original_obs(self.env.reset()))
        interrupted = getattr(self, "_interrupted_by", None)
        if interrupted is not None and not reset_num_timesteps and self._last_obs is not None:
            raise RuntimeError(
                f"The previous learn() stopped on a bad step ({interrupted}). The model's last observation and step "
                "count no longer match the environment: call learn(..., reset_num_timesteps=True), or set_env() an "
                "environment to start from its reset, instead of continuing."
            )
        self._interrupted_by: str | None = None
        # The monitors made by _wrap_env count violations with this algorithm's threshold.
        own = self._own_monitors()
        adopted = self.env.env_method("adopt_violation_threshold", self.violation_threshold, indices=own)
        vec_monitor = _find_vec_cost_monitor(self.env)
        if vec_monitor is not None:
            # The VecCostMonitor writes the episode records (over any CostMonitor below it).
            taken = vec_monitor.adopt_violation_threshold(self.violation_threshold)
            thresholds = set() if taken else {vec_monitor.violation_threshold}
        else:
            others = [index for index, taken in zip(own, adopted) if not taken]
            thresholds = set(self.env.get_attr("violation_threshold", indices=others)) if others else set()
        if thresholds - {self.violation_threshold}:
            warnings.warn(
                f"The cost monitor you wrapped the environment in counts violations above {sorted(thresholds)}, "
                f"this model above violation_threshold={self.violation_threshold}: the buffer and the training "
                "follow the model's, the episode logs (rollout/ep_violations_mean, rollout/violation_rate) the "
                "monitor's. Give both the same threshold."
            )
        will_reset = reset_num_timesteps or self._last_obs is None
        result = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        if will_reset:
            self.replay_buffer.add_initial_states(self._original_obs())
        return result

    @property
    def ep_cost_buffer(self) -> list[tuple[float, int]]:
        """``(cost, violating steps)`` of the last finished episodes (up to ``stats_window_size``), read from the
        episode infos of the env's :class:`CostMonitor` / :class:`VecCostMonitor` in SB3's ``ep_info_buffer``: the
        one record of episode costs, which the logs and the callbacks read too."""
        return [(float(info["c"]), int(info["v"])) for info in (self.ep_info_buffer or []) if "c" in info]

    def _own_monitors(self) -> list[int]:
        """Indices of the sub-environments whose outermost wrapper is a :class:`CostMonitor`."""
        assert self.env is not None
        outer = self.env.get_attr("__class__")
        return [index for index, cls in enumerate(outer) if issubclass(cls, CostMonitor)]

    def _original_obs(self, obs: Any = None) -> Any:
        """The unnormalized current observation of the VecEnv (the one SB3 stores in replay buffers)."""
        if self._vec_normalize_env is not None:
            return self._vec_normalize_env.get_original_obs()
        return self._last_obs if obs is None else obs

    def _store_transition(
        self,
        replay_buffer: ConstraintReplayBuffer,  # type: ignore[override]
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        try:  # everything is checked before anything is stored
            get_costs(infos)
            self._check_step(new_obs, reward, dones, infos)
        except ValueError as error:
            # SB3 has already advanced num_timesteps and _last_obs is one step behind the env: continuing this run
            # would pair observations from different steps. learn() refuses to, until it is called with a reset.
            self._interrupted_by = f"{type(error).__name__}: {error}"
            raise
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)  # type: ignore[arg-type]
        if np.any(dones):
            # The VecEnv has already reset the finished envs: their new observation starts an episode (D_0).
            replay_buffer.add_initial_states(self._original_obs(new_obs), select=np.asarray(dones, dtype=bool))

    def _check_step(self, new_obs: Any, reward: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> None:
        """Raise a ValueError naming the env and the step if a reward or an observation (terminal ones included) of
        this VecEnv step is NaN or infinite."""
        step = self.num_timesteps
        bad = np.flatnonzero(~np.isfinite(np.asarray(reward, dtype=np.float64).reshape(self.n_envs)))
        if bad.size:
            raise ValueError(f"The reward of env {int(bad[0])} at step {step} is not finite: {reward}; nothing was stored.")
        observations = [("observation", None, new_obs)] + [
            ("terminal observation", index, info["terminal_observation"])
            for index, (done, info) in enumerate(zip(dones, infos))
            if done and "terminal_observation" in info
        ]
        for name, env_index, value in observations:
            for key, array in value.items() if isinstance(value, dict) else [("", value)]:
                array = np.asarray(array)
                if array.dtype.kind not in "fc":
                    continue
                finite = np.isfinite(array)
                if finite.all():
                    continue
                if env_index is None:
                    env_index = int(np.flatnonzero(~finite.reshape(self.n_envs, -1).all(axis=1))[0])
                label = f"{name}[{key!r}]" if key else name
                raise ValueError(
                    f"The {label} of env {env_index} at step {step} is not finite (NaN or inf); nothing was stored. "
                    "Check the environment (or clip or normalise its observations)."
                )

    def dump_logs(self) -> None:
        record_episode_costs(self.logger, self.ep_info_buffer)
        super().dump_logs()

    def learn(
        self: SelfSafeSACBase,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfSafeSACBase:
        """SB3's ``learn``; the TensorBoard run is named after the algorithm (``MetaSACLag``, ``SACLag``, ...)."""
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name or type(self).__name__,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    # Training -------------------------------------------------------------------------------------------------------
    def _scheduled_optimizers(self) -> list[th.optim.Optimizer]:
        """The optimizers whose learning rate follows ``learning_rate`` (a schedule, as in SB3): the actor's and the
        reward and safety critics'. ``nu``, ``epsilon`` and Meta SAC-Lag's ``alpha`` have learning rates of their own."""
        return [self.actor.optimizer, self.critic.optimizer, self.safety_critic.optimizer]

    def _policy_batch_empty(self) -> bool:
        """True (with a warning, once) while ``policy_batch="non_violating"`` has no non-violating transition to draw."""
        if self.policy_batch != "non_violating" or self.replay_buffer.non_violating_size() > 0:
            return False
        if not self._warned_empty_non_violating:
            warnings.warn("Every transition collected so far violates the constraint: the reward critic and the actor wait.")
            self._warned_empty_non_violating = True
        return True

    def sample_policy_batch(self, batch_size: int) -> ConstraintReplayBufferSamples:
        """A batch ``B`` (or ``B'``) for the reward critics and the actor: from every transition (``policy_batch="all"``)
        or from the non-violating ones (``"non_violating"``)."""
        if self.policy_batch == "all":
            return self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
        return self.replay_buffer.sample_non_violating(batch_size, env=self._vec_normalize_env)

    def _polyak_update_targets(self) -> None:
        """Polyak-update both target critics (SB3's ``polyak_update``, as two foreach ops over all their parameters:
        the same arithmetic, in two kernels instead of two per parameter) and copy their batch-norm statistics."""
        if self._target_pairs is None:
            sources: list[th.Tensor] = [*self.critic.parameters(), *self.safety_critic.parameters()]
            targets: list[th.Tensor] = [*self.critic_target.parameters(), *self.safety_critic_target.parameters()]
            self._target_pairs = (sources, targets)
        sources, targets = self._target_pairs
        with th.no_grad():
            th._foreach_mul_(targets, 1 - self.tau)
            th._foreach_add_(targets, sources, alpha=self.tau)
        polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

    def _record_train_logs(self, gradient_steps: int, logs: dict[str, list[th.Tensor]]) -> None:
        """Log the means over this call's gradient steps (one transfer from the device), ``n_updates`` and the current
        ``alpha`` (as ``train/ent_coef``, SB3's name), ``nu`` and ``epsilon``."""
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if logs:
            means = th.stack([th.stack(values).float().mean() for values in logs.values()]).cpu().numpy()
            for key, value in zip(logs, means):
                self.logger.record(f"train/{key}", float(value))
        self.logger.record("train/ent_coef", float(self.alpha.item()))
        self.logger.record("train/nu", self.lagrangian.value)
        self.logger.record("train/epsilon", float(self.epsilon.item()))

    def twin_q_values(self, observations: Any, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Reward and safety critic values, one column per twin: two tensors of shape ``(batch, n_critics)``."""
        return th.cat(self.critic(observations, actions), dim=1), th.cat(self.safety_critic(observations, actions), dim=1)

    def q_values(self, observations: Any, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """``(Qr, Qc)``: min of the twin reward critics and max of the twin safety critics, shape ``(batch, 1)``."""
        qr, qc = self.twin_q_values(observations, actions)
        return qr.amin(dim=1, keepdim=True), qc.amax(dim=1, keepdim=True)

    @staticmethod
    def penalised_value(qr: th.Tensor, qc: th.Tensor, nu: th.Tensor) -> th.Tensor:
        """The value the actor ascends besides entropy, from twin critic values: ``min Qr - nu * max Qc`` (Eq. 11).

        RCPO variants override it with the penalised critic ``min_j (Qr_j - nu * Qc_j)``.
        """
        return qr.amin(dim=1, keepdim=True) - nu * qc.amax(dim=1, keepdim=True)

    # Saving ---------------------------------------------------------------------------------------------------------
    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "actor",
            "critic",
            "critic_target",
            "safety_critic",
            "safety_critic_target",
            "lagrangian",
            "epsilon",
            "log_ent_coef",
            "_actor_parameter_names",
            "_target_pairs",
            "_interrupted_by",
        ]

    def save(self, path: Any, exclude: Any = None, include: Any = None) -> None:
        """SB3's ``save``, atomic for file paths: the model is written next to ``path`` and renamed over it only once
        complete, so a failed save (a full disk, a killed process) leaves the previous file intact. An unwritable path
        raises an ``OSError``. File objects are written to directly, as in SB3."""
        if not isinstance(path, (str, os.PathLike)):
            super().save(path, exclude=exclude, include=include)
            return
        _atomic_write(path, "zip", lambda target: OffPolicyAlgorithm.save(self, target, exclude=exclude, include=include))

    def save_replay_buffer(self, path: Any) -> None:
        """SB3's ``save_replay_buffer``, atomic for file paths (see :meth:`save`)."""
        if not isinstance(path, (str, os.PathLike)):
            super().save_replay_buffer(path)
            return
        _atomic_write(path, "pkl", lambda target: OffPolicyAlgorithm.save_replay_buffer(self, target))

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfSafeSACBase], path: Any, env: GymEnv | None = None, device: th.device | str = "auto", **kwargs: Any
    ) -> SelfSafeSACBase:
        """SB3's ``load``, after checking that the file was saved by this algorithm (a clear error otherwise); the loaded
        hyperparameters go through the constructor's checks (``_setup_model``)."""
        check_model_file(path)
        data = _saved_data(path)
        saved = None if data is None else _saved_algorithm(data)
        if saved is not None and saved != cls.__name__:
            where = "stable_baselines3's SAC" if saved == "SAC" else saved
            raise ValueError(f"{path} was saved by {where}: load it with that class's load(), not {cls.__name__}.load()")
        version = None if data is None or data.get("package_version") is None else str(data["package_version"])
        if data is not None and version != PACKAGE_VERSION:
            made_by = (
                "a development version of sb3-metasaclag from before the 0.1.0 release (it records no version)"
                if version is None
                else f"sb3-metasaclag {version}"
            )
            raise ValueError(
                f"{_resolve(path, '.zip')} was saved by {made_by}; this is sb3-metasaclag {PACKAGE_VERSION}, which "
                "reads the files of its own version only: train the model again (or load it with the version that "
                "saved it)"
            )
        return super().load(path, env=env, device=device, **kwargs)  # type: ignore[return-value]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "critic.optimizer", "safety_critic.optimizer", "lagrangian.optimizer"]
        return state_dicts, ["lagrangian.nu", "epsilon", "log_ent_coef"]

    def load_replay_buffer(self, path: Any, truncate_last_traj: bool = True) -> None:
        import pickle

        from stable_baselines3.common.save_util import load_from_pkl

        resolved = _resolve(path, ".pkl")
        if isinstance(resolved, str) and os.path.exists(resolved) and os.path.getsize(resolved) == 0:
            raise ValueError(f"Cannot load a replay buffer from {resolved}: the file is empty (0 bytes)")
        try:
            buffer = load_from_pkl(path, self.verbose)
        except (EOFError, pickle.UnpicklingError, AttributeError, ImportError, IndexError, ValueError) as error:
            raise ValueError(
                f"Cannot load a replay buffer from {resolved}: the file is truncated or not a buffer saved by "
                f"save_replay_buffer() ({type(error).__name__}: {error})"
            ) from error
        if not isinstance(buffer, ConstraintReplayBuffer):
            raise TypeError(f"{resolved} holds a {type(buffer).__name__}, not a pickled ConstraintReplayBuffer")
        buffer.device = self.device
        self.replay_buffer = buffer
