"""Meta SAC-Lag: SAC-Lagrangian whose safety threshold and entropy temperature are tuned by meta-gradients."""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import torch as th
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.type_aliases import GymEnv, Schedule

from sb3_metasaclag.common.buffers import ConstraintReplayBufferSamples
from sb3_metasaclag.common.diff_optim import DifferentiableRMSprop, triple_dot
from sb3_metasaclag.common.policies import SafeSACPolicy
from sb3_metasaclag.common.safe_sac import SafeSACBase, check_range, check_whole
from sb3_metasaclag.metasaclag.outer_rules import (  # noqa: F401  (LOG_ALPHA_MIN, entropy_bound: part of this module's API)
    LOG_ALPHA_MIN,
    RULES,
    entropy_bound,
    make_rule,
)

EPSILON_BATCHES = ("like_policy", "mixed")
OUTER_RULES = tuple(RULES)


def _alpha_from_ent_coef(
    algorithm: str, ent_coef: str | float | None, target_entropy: str | float, alpha: float, learn_alpha: bool
) -> tuple[float, bool]:
    """SAC's ``ent_coef`` in the meta variants: ``"auto"`` learns ``alpha`` (from 1), ``"auto_x"`` learns it from ``x``,
    a float fixes it (as ``learn_alpha=False``). ``target_entropy`` has no meaning where Eq. 15 learns ``alpha``."""
    if target_entropy != "auto":
        raise ValueError(
            f"{algorithm} learns alpha by meta-gradient (Eq. 15), not towards a target entropy: target_entropy has no "
            "effect; use outer_rule_kwargs=dict(min_entropy=...) (averaged rule) for an entropy floor, outer_rule='survival' "
            "(SAC v2's target entropy), or a float ent_coef for a fixed alpha"
        )
    if ent_coef is None:
        return alpha, learn_alpha
    if alpha != 1.0:
        raise ValueError(f"Give alpha (the initial temperature) or ent_coef, not both (alpha={alpha}, ent_coef={ent_coef!r})")
    if isinstance(ent_coef, str):
        if ent_coef == "auto":
            return 1.0, learn_alpha
        message = f"ent_coef must be 'auto', 'auto_<initial alpha>' or a float, got {ent_coef!r}"
        if not ent_coef.startswith("auto_"):
            raise ValueError(message)
        try:
            return float(ent_coef[len("auto_") :]), learn_alpha
        except ValueError:
            raise ValueError(message) from None
    return float(ent_coef), False


class InnerStep(NamedTuple):
    """The result of :meth:`MetaSACLag.inner_step` (steps 3-4)."""

    nu: th.Tensor  # nu'
    nu_state: Any  # RMSProp state of nu after the step
    dnu_depsilon: th.Tensor | None  # d nu' / d epsilon (closed form only)
    params: list[th.Tensor]  # phi'
    actor_state: list[dict[str, Any]]  # RMSProp state of the actor after the step
    dparams_dgrads: list[th.Tensor]  # elementwise d phi' / d (actor gradient) (closed form only, else empty)
    grad_entropy: list[th.Tensor]  # d mean(log pi) / d phi (closed form only, else empty)
    grad_safety: list[th.Tensor]  # d mean(Qc) / d phi (closed form only, else empty)
    actor_loss: th.Tensor
    mean_log_prob: th.Tensor | None = None  # mean log pi of the actor before the step (its entropy, negated)
    safety_value: th.Tensor | None = None  # J_c = mean max Qc(s, a ~ pi) on the batch (the constraint's left side)


class MetaStep(NamedTuple):
    """The result of :meth:`MetaSACLag.meta_gradients` (steps 3-6)."""

    inner: InnerStep
    epsilon_objective: th.Tensor | None  # J_eps (Eq. 14) or J_nl (Eq. 16)
    grad_epsilon: th.Tensor | None  # d J_eps / d epsilon
    epsilon: th.Tensor  # epsilon' (clipped)
    epsilon_state: Any  # RMSProp state of epsilon after the step
    alpha_objective: th.Tensor | None  # J_alpha (Eq. 15)
    grad_alpha: th.Tensor | None  # d J_alpha / d alpha


class MetaSACLag(SafeSACBase):
    """
    Meta Soft Actor-Critic Lagrangian (Meta SAC-Lag).

    Paper: "Meta SAC-Lag: Towards Deployable Safe Reinforcement Learning via MetaGradient-based Hyperparameter Tuning",
    Honari et al., https://arxiv.org/abs/2408.07962

    SAC with a Lagrangian safety constraint ``E[Qc(s, a)] <= epsilon``. Each gradient step (Algorithm 1, lines 12-20):

    1. twin safety critics on ``D u D_s`` (Eq. 2 target, ``max`` of the target critics);
    2. twin reward critics on a batch ``B`` of every transition (``policy_batch="all"``, Appendix B) or of ``D``
       (SAC target, ``min`` of the target critics);
    3. inner step of the Lagrange multiplier ``nu' = max(0, nu - RMSProp(dL/dnu))`` (Eq. 11), differentiable in
       ``epsilon``;
    4. inner step of the actor ``phi' = phi - RMSProp(grad_phi(alpha log pi - Qr + nu' Qc))`` (Eq. 11), kept in the
       graph so that ``phi'`` is a function of ``epsilon`` (through ``nu'``) and of ``alpha``;
    5. outer step of ``epsilon``: ascent on ``J_eps`` (Eq. 14, ``epsilon_objective="linear"``) or ``J_nl`` (Eq. 16,
       ``"nonlinear"``) evaluated with ``phi'`` on a resampled batch ``B'``, then clipped to ``[0, epsilon_max]``;
    6. outer step of ``alpha``: ascent on ``J_alpha`` (Eq. 15) on initial states from ``D_0`` with the deterministic
       action of ``phi'``; ``log alpha`` is clamped to ``[-20, 0]`` so that ``0 < alpha <= 1`` (the lower bound, ours, only
       keeps ``alpha`` positive in float32);
    7. commit ``nu'``, ``phi'`` and their RMSProp states, then Polyak-update both target critics.

    The meta-gradients of steps 5-6 are the paper's, exact (checked against finite differences). How they move
    ``epsilon`` and ``alpha`` is the outer rule, an object of ``metasaclag/outer_rules.py`` chosen by ``outer_rule``
    and configured by ``outer_rule_kwargs`` (its class's parameters):

    - ``"paper"`` (:class:`~sb3_metasaclag.metasaclag.outer_rules.PaperRule`), the paper's literal reading
      (Algorithm 1, lines 18-19): after every gradient step, one RMSProp step of ``epsilon`` (learning rate ``1e-2``)
      on the linear objective ``J_eps`` (Eq. 14) and one Adam step of ``log alpha`` (``3e-3``, Meta-SAC's gradient
      clipping), with the exact derivative of the projection ``nu' = max(0, .)`` (zero where it clips);
    - ``"averaged"`` (default; ours, :class:`~sb3_metasaclag.metasaclag.outer_rules.AveragedRule`): the
      meta-gradients are averaged over 20 gradient steps and each outer variable takes one Rprop step per interval, so
      that noise shrinks the steps; ``d nu'/d epsilon`` is taken straight through the projection; after its step
      ``epsilon`` is held within 0.05 of the interval's mean ``J_c = E[Qc]``. Its options (an entropy floor and
      ceiling, the band, the steps, ``J_c`` at initial states) are the class's parameters;
    - ``"survival"`` (ours, a candidate: :class:`~sb3_metasaclag.metasaclag.outer_rules.SurvivalRule`): ``epsilon``
      climbs an objective that prefers one threshold (Eq. 16's positive branch above a baseline), ``nu`` is a PI
      controller, ``alpha`` follows SAC v2's target entropy.

    docs/reproduction.md and docs/outer_loop/ have the evidence for each rule and what none of them achieves yet.

    Defaults and where they come from:

    - the paper (Sec. 5.1, Appendix B): ``epsilon = 1``, ``alpha = 1``, ``gamma = 0.99``; RMSProp for ``nu``, ``phi``
      and ``epsilon``, with ``torch.optim.RMSprop``'s own settings (the paper gives none);
    - SB3's SAC: ``learning_rate`` (critics and the actor's inner step ``beta_phi``), ``buffer_size``,
      ``batch_size``, ``tau``, ``learning_starts``, network sizes;
    - Meta-SAC (Wang & Ni 2020), whose ``alpha`` meta-objective Eq. 15 extends: Adam on ``log alpha`` with
      gradient-norm clipping ``0.05`` and ``log alpha <= 0``; batches of 256 initial states;
    - our choices (the paper omits them), measured on the built-in tasks (docs/known_answers.md):
      ``nu = 10`` (the smallest initial ``nu`` of the paper's Table 1), ``gamma_c = 0.99`` (like ``gamma``),
      ``nu_learning_rate = 1e-2``; each rule's settings as its class says. What each choice did is in
      docs/meta_sac_lag.md.

    Where one gradient step lives: :meth:`~sb3_metasaclag.common.safe_sac.SafeSACBase.train` (``common/safe_sac.py``)
    runs steps 1-2 for every algorithm of the package and calls :meth:`_update_actor_and_multipliers` here, which
    computes steps 3-6 with :meth:`compute_meta_step` (:meth:`inner_step`, then :meth:`meta_gradients`; the autograd
    reference is ``metasaclag/reference.py``), moves ``epsilon`` and ``alpha`` by the outer rule's ``outer_step``
    and commits step 7; under the survival rule, the rule's ``train_step`` does steps 3-7.

    :param policy: The policy model to use (``MlpPolicy``, ``MultiInputPolicy``).
    :param env: The environment to learn from (if registered in Gym, can be str). It must report ``info["cost"]``.
    :param learning_rate: Learning rate of the critics, the safety critics and the actor's inner RMSProp step
        (``beta_phi``); it can be a function of the current progress remaining (from 1 to 0).
    :param buffer_size: Size of the main replay buffer ``D`` (``D_s`` has the same size unless
        ``replay_buffer_kwargs["safety_buffer_size"]`` says otherwise).
    :param learning_starts: How many steps of the model to collect transitions for before learning starts.
    :param batch_size: Minibatch size for each gradient update.
    :param tau: The soft update coefficient ("Polyak update", between 0 and 1).
    :param gamma: The discount factor ``gamma_r`` of the reward.
    :param train_freq: Update the model every ``train_freq`` steps (or ``(n, "episode")``).
    :param gradient_steps: How many gradient steps to do after each rollout (-1: as many as steps collected).
    :param action_noise: The action noise type (None by default).
    :param replay_buffer_kwargs: Keyword arguments of :class:`~sb3_metasaclag.common.buffers.ConstraintReplayBuffer`.
    :param target_update_interval: Update the target networks every ``target_update_interval`` gradient steps.
    :param gamma_c: Discount factor ``gamma_c`` of the safety critic (Eq. 2).
    :param nu: Initial Lagrange multiplier ``nu`` (paper, Table 1 for its tasks).
    :param nu_learning_rate: Learning rate ``beta_nu`` of ``nu`` (ours: the paper gives none).
    :param nu_optimizer: ``"rmsprop"`` (the paper's) or ``"sgd"`` (plain gradient steps on ``nu``; see ``SafeSACBase``).
        The survival rule replaces both by its PI controller.
    :param epsilon: Initial safety threshold ``epsilon`` (paper: 1).
    :param epsilon_max: Upper bound of ``epsilon``; ``Qc`` is a discounted probability, hence 1.
    :param epsilon_batch: States of the ``epsilon`` objective: ``"like_policy"`` (default), a batch ``B'`` drawn like ``B``
        (Algorithm 1, line 17; see ``policy_batch``), or ``"mixed"``, half from the non-violating transitions ``D`` and
        half from the violating transitions ``D_s`` (not in the paper: an experimental option; what it did on
        ``SafeNavigation2D-v0`` is in docs/known_answers.md).
    :param policy_batch: Transitions of the batches ``B`` (reward critics, ``nu``, actor) and ``B'`` (``epsilon``):
        ``"all"`` (default) draws uniformly from every transition, ``D u D_s``, as Appendix B of the paper describes
        ``D`` ("stores all the transitions"), so that the reward critics learn that a violation ends the episode;
        ``"non_violating"`` draws from the non-violating transitions only, as Algorithm 1 (lines 7-10) routes them.
        The paper is ambiguous here; docs/known_answers.md has what each choice did on
        ``SafeNavigation2D-v0``. Storage does not change: ``D`` and ``D_s`` hold each transition once.
    :param alpha: Initial entropy temperature ``alpha`` in ``(0, 1]`` (paper: 1).
    :param learn_epsilon: Take the outer ``epsilon`` step; False gives the fixed-``epsilon`` ablation.
    :param learn_alpha: Take the outer ``alpha`` step; False gives the fixed-``alpha`` ablation.
    :param outer_rule: How ``epsilon`` and ``alpha`` move: ``"averaged"`` (default, ours), ``"paper"`` (Algorithm 1
        as written) or ``"survival"`` (ours, a candidate); see above.
    :param outer_rule_kwargs: The rule's settings: the parameters of its class in ``metasaclag/outer_rules.py``
        (e.g. ``dict(epsilon_objective="nonlinear")`` for Eq. 16, ``dict(min_entropy="auto")`` for the averaged rule's
        entropy floor, ``dict(constraint_states="initial")`` for ``J_c`` at initial states).
    :param ent_coef: SAC's argument: ``"auto"`` (default: learn ``alpha`` from 1), ``"auto_<x>"`` (learn it from
        ``x``) or a float (a fixed ``alpha``, as ``learn_alpha=False``).
    :param target_entropy: Only ``"auto"``: Eq. 15, not a target entropy, moves ``alpha`` here (the survival rule uses
        SAC v2's ``-dim(A)``).
    :param replay_buffer_class: ``ConstraintReplayBuffer`` (default) or a subclass of it.
    :param use_sde: SAC's gSDE: not supported here (``False`` only; ``SACLag`` and ``RCPOSAC`` take it), nor is
        ``optimize_memory_usage``; ``sde_sample_freq`` and ``use_sde_at_warmup`` are accepted for SAC compatibility.
    :param nu_max: Upper end of ``nu``'s projection (default ``inf``: only ``nu >= 0``, as in the paper).
    :param meta_gradient_method: ``"closed_form"`` (default): exact meta-gradients from first-order gradients (see
        :meth:`inner_step`); ``"autograd"``: the reference implementation that differentiates through the inner
        backward pass (same values, several times slower).
    :param meta_gradient_every: Compute the meta-gradients (steps 5-6 and the first-order passes they need) on one
        gradient step in ``k`` only (ours; 1, the default, is every step, as the paper does). The other steps are
        plain inner steps of ``nu`` and the actor with the current ``epsilon`` and ``alpha`` (the same updates, about
        half the arithmetic). Under the averaged rule ``meta_interval`` must be a multiple of ``k``: each interval
        averages ``meta_interval / k`` meta-gradients; under the paper's rule ``epsilon`` and ``alpha`` step on the
        steps that compute them.
    :param violation_threshold: A transition violates the constraint when ``info["cost"]`` exceeds it.
    :param n_initial_states: Reset observations that pre-fill ``D_0`` before learning (Algorithm 1, line 2).
    :param initial_state_batch_size: Batch of ``D_0`` for the ``alpha`` objective.
    :param initial_state_buffer_size: Capacity of ``D_0``.
    :param rmsprop_kwargs: Settings of the RMSProp optimizers (``torch.optim.RMSprop`` arguments but ``lr``).
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to average
        the reported success rate, mean episode length, mean reward, cost and violation rate over.
    :param tensorboard_log: The log location for tensorboard (if None, no logging).
    :param policy_kwargs: Additional arguments to be passed to the policy on creation.
    :param verbose: Verbosity level: 0 for no output, 1 for info messages, 2 for debug messages.
    :param seed: Seed for the pseudo random generators.
    :param device: Device (cpu, cuda, ...) on which the code should be run.
    :param main_batch: Deprecated name of ``policy_batch`` (kept for one release, with a warning).
    :param _init_setup_model: Whether or not to build the network at the creation of the instance.
    """

    policy_aliases: ClassVar = SafeSACBase.policy_aliases
    # Set by the outer rule (outer_rules.py, ``apply``) from its settings; read by the gradient step.
    epsilon_objective: str
    epsilon_learning_rate: float | None
    alpha_learning_rate: float | None
    alpha_max_grad_norm: float | None
    constraint_states: str
    nu_derivative: str
    meta_interval: int
    epsilon_band: float | tuple[float, float] | None
    min_entropy: float | str | None
    max_entropy: float | str | None
    outer_step_bounds: tuple[float, float] | None
    epsilon_optimizer: th.optim.Optimizer

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
        nu_optimizer: Literal["rmsprop", "sgd"] = "rmsprop",
        epsilon: float = 1.0,
        epsilon_max: float = 1.0,
        epsilon_batch: Literal["like_policy", "mixed"] = "like_policy",
        policy_batch: Literal["non_violating", "all"] = "all",
        alpha: float = 1.0,
        ent_coef: str | float | None = None,
        target_entropy: str | float = "auto",
        learn_epsilon: bool = True,
        learn_alpha: bool = True,
        outer_rule: Literal["averaged", "paper", "survival"] = "averaged",
        outer_rule_kwargs: dict[str, Any] | None = None,
        nu_max: float = math.inf,
        meta_gradient_method: Literal["closed_form", "autograd"] = "closed_form",
        meta_gradient_every: int = 1,
        violation_threshold: float = 0.0,
        n_initial_states: int = 32,
        initial_state_batch_size: int = 256,
        initial_state_buffer_size: int = 10_000,
        rmsprop_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        replay_buffer_class: type | None = None,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
        optimize_memory_usage: bool = False,
        main_batch: str | None = None,
        _init_setup_model: bool = True,
    ) -> None:
        alpha, learn_alpha = _alpha_from_ent_coef(type(self).__name__, ent_coef, target_entropy, alpha, learn_alpha)
        if epsilon_batch == "main":
            warnings.warn(
                "epsilon_batch='main' was renamed epsilon_batch='like_policy' (a batch drawn like the policy batch B); "
                "the old value will be removed in the next release.",
                DeprecationWarning,
                stacklevel=2,
            )
            epsilon_batch = "like_policy"
        if epsilon_batch not in EPSILON_BATCHES:
            raise ValueError(f"epsilon_batch must be one of {EPSILON_BATCHES}, got {epsilon_batch!r}")
        self.epsilon_batch = epsilon_batch
        check_range("alpha", alpha, 0.0, 1.0, low_open=True)
        check_whole("meta_gradient_every", meta_gradient_every, 1)
        self.meta_gradient_every = int(meta_gradient_every)
        # The rule and its settings (outer_rules.py): checked here, set on the model by _setup_model (as in load()).
        self.outer_rule: str | None = outer_rule
        self.outer_rule_kwargs: dict[str, Any] | None = dict(outer_rule_kwargs or {})
        self._rule: Any = make_rule(outer_rule, self.outer_rule_kwargs)
        if not _init_setup_model:  # load(): the rule comes from the file (see _resolve_outer_rule)
            self.outer_rule, self.outer_rule_kwargs, self._rule = None, None, None
        if outer_rule == "survival" and meta_gradient_every != 1:
            raise ValueError("outer_rule='survival' computes its signal at every gradient step: meta_gradient_every=1")
        check_range("nu_max", nu_max, float(nu), math.inf)
        self.nu_max = float(nu_max)
        self.initial_alpha = float(alpha)
        self.learn_epsilon = bool(learn_epsilon)
        self.learn_alpha = bool(learn_alpha)
        if meta_gradient_method not in ("closed_form", "autograd"):
            raise ValueError(f"meta_gradient_method must be 'closed_form' or 'autograd', got {meta_gradient_method!r}")
        if meta_gradient_method == "closed_form" and (rmsprop_kwargs or {}).get("centered", False):
            raise ValueError("The closed-form meta-gradients need a non-centered RMSProp: use meta_gradient_method='autograd'")
        self.meta_gradient_method = meta_gradient_method
        # The actor's update is differentiated through: it must be an RMSProp step (paper, Appendix B).
        policy_kwargs = {
            "actor_optimizer_class": th.optim.RMSprop,
            "actor_optimizer_kwargs": dict(rmsprop_kwargs or {}),
            **(policy_kwargs or {}),
        }
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            action_noise=action_noise,
            replay_buffer_kwargs=replay_buffer_kwargs,
            target_update_interval=target_update_interval,
            gamma_c=gamma_c,
            nu=nu,
            nu_learning_rate=nu_learning_rate,
            nu_optimizer=nu_optimizer,
            epsilon=epsilon,
            epsilon_max=epsilon_max,
            policy_batch=policy_batch,
            violation_threshold=violation_threshold,
            n_initial_states=n_initial_states,
            initial_state_batch_size=initial_state_batch_size,
            initial_state_buffer_size=initial_state_buffer_size,
            rmsprop_kwargs=rmsprop_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            replay_buffer_class=replay_buffer_class,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            use_sde_at_warmup=use_sde_at_warmup,
            optimize_memory_usage=optimize_memory_usage,
            main_batch=main_batch,
            _init_setup_model=_init_setup_model,
        )

    def _setup_model(self) -> None:
        if self.epsilon_batch == "main":  # a model saved before the value was renamed
            self.epsilon_batch = "like_policy"
        self._resolve_outer_rule()
        super()._setup_model()

    def _resolve_outer_rule(self) -> None:
        """Set the outer rule's settings on the model (``outer_rules.py``; a loaded model rebuilds its rule from its
        name and keyword arguments, or keeps the survival rule's state from its file)."""
        if self.outer_rule is None:  # a model saved before outer_rule existed: it used the paper's rule
            self.outer_rule = "paper"
        if self.outer_rule_kwargs is None:  # saved before the rule objects: its settings were attributes of the model
            accepted = inspect.signature(RULES[self.outer_rule]).parameters
            self.outer_rule_kwargs = {key: getattr(self, key) for key in accepted if getattr(self, key, None) is not None}
        if self._rule is None:
            self._rule = make_rule(self.outer_rule, self.outer_rule_kwargs)
        self._rule.apply(self)

    @property
    def entropy_floor(self) -> float | None:
        """The lower bound on the policy's entropy ``-E[log pi]`` that the averaged rule keeps (None: none)."""
        if self.min_entropy is None:
            return None
        floor = entropy_bound(self.min_entropy, int(np.prod(self.action_space.shape)), "min_entropy")  # type: ignore[arg-type]
        return None if floor == -math.inf else floor

    @property
    def entropy_ceiling(self) -> float | None:
        """The upper bound on the policy's entropy ``-E[log pi]`` that the averaged rule keeps (None: none)."""
        if self.max_entropy is None:
            return None
        ceiling = entropy_bound(self.max_entropy, int(np.prod(self.action_space.shape)), "max_entropy")  # type: ignore[arg-type]
        return None if ceiling == math.inf else ceiling

    def _setup_entropy(self) -> None:
        # log alpha; its optimizer is the rule's (set up in _setup_meta_learning).
        self.log_ent_coef = th.tensor(math.log(self.initial_alpha), device=self.device, requires_grad=True)
        self.ent_coef_optimizer: th.optim.Optimizer | None = None

    def _setup_meta_learning(self) -> None:
        # Gradient steps taken, to pick the ones that compute meta-gradients (meta_gradient_every).
        self._inner_step_count: int = getattr(self, "_inner_step_count", 0)
        self.actor_rmsprop = DifferentiableRMSprop(self.actor.optimizer)  # type: ignore[arg-type]
        self._actor_parameter_names = [name for name, _ in self.actor.named_parameters()]
        self.epsilon_rmsprop: DifferentiableRMSprop | None = None
        # The averaged rule's sums of meta-gradients over its interval (kept for every rule, saved with the model).
        if getattr(self, "_meta_sums", None) is None:
            self._meta_sums = {key: th.zeros((), device=self.device) for key in ("epsilon", "log_alpha", "log_prob", "safety")}
            self._meta_count = 0
        else:  # load() restored a model in the middle of an interval, possibly onto another device
            self._meta_sums = {key: value.to(self.device) for key, value in self._meta_sums.items()}
        self._rule.setup(self)  # the optimizers of epsilon and alpha (and the survival rule's multiplier)

    # One meta update, as functions of their inputs (the tests differentiate them) ----------------------------------------
    def inner_step(
        self,
        observations: Any,
        epsilon: th.Tensor | float,
        alpha: th.Tensor | float,
        constraint_observations: Any | None = None,
    ) -> InnerStep:
        """Steps 3-4: the inner updates ``nu'`` and ``phi'`` on a batch of states, and what their derivatives need.

        The actor loss of Eq. 11 is ``alpha * A - V`` with ``A = mean log pi`` and ``V = R - nu' C`` (``R = mean Qr``,
        ``C = mean Qc``), so its gradient ``g = alpha grad A - grad V`` is linear in ``alpha`` and in ``nu'``
        (``d g / d nu' = grad C``), and RMSProp updates each weight from its own gradient only. Hence
        ``d phi'/d epsilon = D * grad C * d nu'/d epsilon`` and ``d phi'/d alpha = D * grad A``, where ``D`` is the
        elementwise derivative of the RMSProp step: exact meta-gradients from first-order gradients, without
        differentiating through a backward pass. ``grad C`` is computed only when ``epsilon`` is learned.

        ``nu``'s step measures ``J_c`` on ``constraint_observations`` when given (``constraint_states="initial"``),
        else on the batch, as Eq. 11 does; the actor's penalty ``C`` is always the batch's.
        """
        log_prob, qr, qc, safety_term, constraint_value = self._inner_terms(observations, constraint_observations)
        new_nu, nu_state, dnu_depsilon = self.lagrangian.step_with_derivative(constraint_value, epsilon)  # Eq. 11 in nu
        entropy_term, value_term = log_prob.mean(), self.penalised_value(qr, qc, new_nu).mean()
        alpha = th.as_tensor(alpha).detach()
        params = self.actor_rmsprop.params
        grad_c: list[th.Tensor] = []
        if self.learn_epsilon:
            # V = R - nu' C (Eq. 11): grad R and grad C each go through their own twin critics once.
            grad_c = list(th.autograd.grad(safety_term, params, retain_graph=True))
            grad_r = th.autograd.grad(qr.amin(dim=1).mean(), params, retain_graph=True)
            grad_v: Sequence[th.Tensor] = [r - new_nu * c for r, c in zip(grad_r, grad_c)]
        else:
            grad_v = th.autograd.grad(value_term, params, retain_graph=True)
        grad_a = list(th.autograd.grad(entropy_term, params))
        grads = [alpha * a - v for a, v in zip(grad_a, grad_v)]  # Eq. 11 in phi
        with th.no_grad():
            new_params, actor_state = self.actor_rmsprop.step(grads)
            dparams_dgrads = self.actor_rmsprop.step_derivative(grads)
        actor_loss = (alpha * entropy_term - value_term).detach()
        return InnerStep(
            new_nu,
            nu_state,
            dnu_depsilon,
            new_params,
            actor_state,
            dparams_dgrads,
            grad_a,
            grad_c,
            actor_loss,
            entropy_term.detach(),
            constraint_value.detach(),
        )

    def _inner_terms(
        self, observations: Any, constraint_observations: Any | None
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        """What the inner steps start from, in the graph: ``log pi`` of the actor's actions on the batch, the twin
        reward and safety critics there, the actor's safety term ``C = mean max Qc`` and ``J_c`` for ``nu``'s step
        (``C`` itself, or measured on ``constraint_observations`` when given)."""
        actions, log_prob = self.actor.action_log_prob(observations)
        qr, qc = self.twin_q_values(observations, actions)
        safety_term = qc.amax(dim=1).mean()
        constraint_value = safety_term if constraint_observations is None else self.constraint_value(constraint_observations)
        return log_prob, qr, qc, safety_term, constraint_value

    @th.no_grad()
    def constraint_value(self, observations: Any) -> th.Tensor:
        """``J_c = E[max_j Qc_j(s, a)]``, ``a ~ pi(s)``, on the given states (a value: nothing is differentiated)."""
        actions, _ = self.actor.action_log_prob(observations)
        return th.cat(self.safety_critic(observations, actions), dim=1).amax(dim=1).mean()  # the safety critics only

    def actor_with(self, params: Sequence[th.Tensor], observations: Any, deterministic: bool = False) -> th.Tensor:
        """Actions of the actor evaluated with the parameters ``params`` (e.g. ``phi'``) instead of its own."""
        return th.func.functional_call(
            self.actor, dict(zip(self._actor_parameter_names, params)), (observations,), {"deterministic": deterministic}
        )

    def epsilon_objective_value(self, params: Sequence[th.Tensor], nu: th.Tensor, observations: Any) -> th.Tensor:
        """``J_eps`` of Eq. 14 (``nu`` is used as a value, not differentiated) or ``J_nl`` of Eq. 16, for ``phi'``."""
        qr, qc = self.q_values(observations, self.actor_with(params, observations))
        if self.epsilon_objective == "linear":
            return (nu.detach() * qc - qr).mean()
        return th.where(qr < 0, qr * qc, qr * (1 - qc)).mean()

    def alpha_objective_value(
        self, params: Sequence[th.Tensor], nu: th.Tensor, epsilon: th.Tensor | float, initial_observations: Any
    ) -> th.Tensor:
        """``J_alpha`` of Eq. 15: the Lagrangian ``Qr - nu (Qc - epsilon)`` at initial states with the deterministic
        action of ``phi'``."""
        actions = self.actor_with(params, initial_observations, deterministic=True)
        value = self.penalised_value(*self.twin_q_values(initial_observations, actions), nu.detach())
        return value.mean() + nu.detach() * th.as_tensor(epsilon).detach()

    @th.no_grad()
    def _epsilon_step(self, grad_epsilon: th.Tensor) -> tuple[th.Tensor, Any]:
        """``epsilon'`` for Eq. 15: the paper's rule steps ``epsilon`` at every gradient step (RMSProp ascent, clipped to
        ``[0, epsilon_max]``); the averaged rule keeps it until the end of its interval (see :meth:`_outer_step`)."""
        if self.epsilon_rmsprop is None:
            return self.epsilon.detach(), None
        (epsilon_next,), epsilon_state = self.epsilon_rmsprop.step([grad_epsilon])
        return epsilon_next.clamp(0.0, self.epsilon_max), epsilon_state

    def meta_gradients(self, observations: Any, validation_observations: Any, initial_observations: Any) -> MetaStep:
        """Steps 3-6 without changing the model: the inner updates, ``d J_eps / d epsilon``, the updated ``epsilon'``
        and ``d J_alpha / d alpha`` (Eq. 15 evaluated with ``epsilon'``)."""
        alpha = self.alpha.detach()
        constraint_observations = initial_observations if self.constraint_states == "initial" else None
        inner = self.inner_step(observations, self.epsilon.detach(), alpha, constraint_observations)
        j_eps, grad_epsilon, epsilon_next, epsilon_state = None, None, self.epsilon.detach(), None
        if self.learn_epsilon:  # Step 5, Eq. 14/16 on the resampled batch B'
            assert inner.dnu_depsilon is not None
            params = [param.detach().requires_grad_(True) for param in inner.params]  # leaves sharing phi' storage
            j_eps = self.epsilon_objective_value(params, inner.nu, validation_observations)
            d_params = th.autograd.grad(j_eps, params, allow_unused=True)
            grad_epsilon = triple_dot(d_params, inner.dparams_dgrads, inner.grad_safety) * inner.dnu_depsilon
            epsilon_next, epsilon_state = self._epsilon_step(grad_epsilon)
        j_alpha, grad_alpha = None, None
        if self.learn_alpha:  # Step 6, Eq. 15 on initial states
            params = [param.detach().requires_grad_(True) for param in inner.params]
            j_alpha = self.alpha_objective_value(params, inner.nu, epsilon_next, initial_observations)
            # The deterministic action does not use the log-std head: its gradients are None.
            d_params = th.autograd.grad(j_alpha, params, allow_unused=True)
            grad_alpha = triple_dot(d_params, inner.dparams_dgrads, inner.grad_entropy)
        return MetaStep(inner, j_eps, grad_epsilon, epsilon_next, epsilon_state, j_alpha, grad_alpha)

    def compute_meta_step(self, observations: Any, validation_observations: Any, initial_observations: Any) -> MetaStep:
        """Steps 3-6 by ``meta_gradient_method``: :meth:`meta_gradients` (closed form) or the autograd reference
        (:func:`sb3_metasaclag.metasaclag.reference.meta_gradients_autograd`)."""
        if self.meta_gradient_method == "autograd":
            from sb3_metasaclag.metasaclag.reference import meta_gradients_autograd

            return meta_gradients_autograd(self, observations, validation_observations, initial_observations)
        return self.meta_gradients(observations, validation_observations, initial_observations)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """``gradient_steps`` gradient steps, as SB3's ``SAC.train``: the shared loop
        :meth:`~sb3_metasaclag.common.safe_sac.SafeSACBase.train` (``common/safe_sac.py``) samples each batch, trains
        the safety and reward critics (steps 1-2), calls :meth:`_update_actor_and_multipliers` below for steps 3-7
        (the inner steps of ``nu`` and the actor, the meta-gradients, the outer rule, the commit), and Polyak-updates
        the targets."""
        super().train(gradient_steps, batch_size)

    def _update_actor_and_multipliers(self, replay_data: ConstraintReplayBufferSamples) -> dict[str, th.Tensor]:
        if self.outer_rule == "survival":
            self._inner_step_count += 1
            return self._rule.train_step(self, replay_data)
        count = self._inner_step_count
        self._inner_step_count += 1
        if count % self.meta_gradient_every:
            return self._plain_inner_step(replay_data)
        validation = None
        if self.learn_epsilon:
            validation = (
                self.replay_buffer.sample_balanced(self.batch_size, env=self._vec_normalize_env)
                if self.epsilon_batch == "mixed"
                else self.sample_policy_batch(self.batch_size)
            )
        initial = (
            self.replay_buffer.sample_initial_states(self.initial_state_batch_size, env=self._vec_normalize_env)
            if self.learn_alpha or self.constraint_states == "initial"
            else None
        )
        step = self.compute_meta_step(
            replay_data.observations, validation.observations if validation is not None else None, initial
        )
        logs = {"actor_loss": step.inner.actor_loss, "nu_clipped": (step.inner.nu <= 0).float()}
        if step.inner.mean_log_prob is not None:
            logs["entropy"] = -step.inner.mean_log_prob
        if step.inner.safety_value is not None:
            logs["safety_value"] = step.inner.safety_value
        if step.epsilon_objective is not None:
            logs["epsilon_objective"] = step.epsilon_objective.detach()
            logs["epsilon_meta_grad"] = step.grad_epsilon.detach()  # type: ignore[union-attr]
        if step.alpha_objective is not None:
            logs["alpha_objective"] = step.alpha_objective.detach()
            logs["alpha_meta_grad"] = step.grad_alpha.detach()  # type: ignore[union-attr]
        self._rule.outer_step(self, step)  # how the meta-gradients move epsilon and alpha
        # Step 7: commit the inner updates.
        self.actor_rmsprop.commit(step.inner.params, step.inner.actor_state)
        self.lagrangian.commit(step.inner.nu, step.inner.nu_state)
        return logs

    def _plain_inner_step(self, replay_data: ConstraintReplayBufferSamples) -> dict[str, th.Tensor]:
        """Steps 3-4 and 7 without the meta-gradients (``meta_gradient_every``): the inner steps of ``nu`` and of the
        actor, the same updates :meth:`inner_step` computes, committed at once; ``epsilon`` and ``alpha`` stay."""
        initial = (
            self.replay_buffer.sample_initial_states(self.initial_state_batch_size, env=self._vec_normalize_env)
            if self.constraint_states == "initial"
            else None
        )
        log_prob, qr, qc, _, constraint_value = self._inner_terms(replay_data.observations, initial)
        new_nu, nu_state, _ = self.lagrangian.step_with_derivative(constraint_value, self.epsilon.detach())
        entropy_term = log_prob.mean()
        actor_loss = self.alpha.detach() * entropy_term - self.penalised_value(qr, qc, new_nu).mean()
        grads = th.autograd.grad(actor_loss, self.actor_rmsprop.params)
        with th.no_grad():
            new_params, actor_state = self.actor_rmsprop.step(grads)
        self.actor_rmsprop.commit(new_params, actor_state)
        self.lagrangian.commit(new_nu, nu_state)
        return {
            "actor_loss": actor_loss.detach(),
            "nu_clipped": (new_nu <= 0).float(),
            "entropy": -entropy_term.detach(),
            "safety_value": constraint_value.detach(),
        }

    def _excluded_save_params(self) -> list[str]:
        # Views of optimizers that are saved through their state dicts, rebuilt by _setup_model().
        return [*super()._excluded_save_params(), "epsilon_rmsprop", "actor_rmsprop"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        if self.outer_rule == "survival":
            variables = [*variables, "lagrangian.integral"]
        return [*state_dicts, "ent_coef_optimizer", "epsilon_optimizer"], variables
