"""Meta SAC-Lag: SAC-Lagrangian whose safety threshold and entropy temperature are tuned by meta-gradients."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import torch as th
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.type_aliases import GymEnv, Schedule

from sb3_metasaclag.common.diff_optim import DifferentiableRMSprop, triple_dot
from sb3_metasaclag.common.policies import SafeSACPolicy
from sb3_metasaclag.common.safe_sac import (
    SafeSACBase,
    check_range,
    optimizer_step,
    reward_critic_loss,
    safety_critic_loss,
)
from sb3_metasaclag.metasaclag.outer_rules import OuterRule, entropy_bound, make_rule


def _initial_alpha(ent_coef: str | float, target_entropy: str | float) -> tuple[float, bool]:
    """``(initial alpha, learned)`` from SAC's ``ent_coef``: ``"auto"`` learns ``alpha`` from 1 (the paper's initial
    value), ``"auto_<x>"`` from ``x``, a float fixes it. ``target_entropy`` has no meaning where Eq. 15 learns it."""
    if target_entropy != "auto":
        raise ValueError(
            "Meta SAC-Lag learns alpha by meta-gradient (Eq. 15), not towards a target entropy: target_entropy has no "
            "effect; use outer_rule_kwargs=dict(min_entropy=...) (averaged rule) for an entropy floor, or a float "
            "ent_coef for a fixed alpha"
        )
    message = f"ent_coef must be 'auto', 'auto_<initial alpha>' or a float, got {ent_coef!r}"
    if isinstance(ent_coef, str):
        if ent_coef == "auto":
            return 1.0, True
        if not ent_coef.startswith("auto_"):
            raise ValueError(message)
        try:
            return float(ent_coef[len("auto_") :]), True
        except ValueError:
            raise ValueError(message) from None
    if isinstance(ent_coef, bool) or not isinstance(ent_coef, (int, float)):
        raise ValueError(message)
    return float(ent_coef), False


class InnerStep(NamedTuple):
    """The result of :meth:`MetaSACLag.inner_step` (Algorithm 1, lines 15-16)."""

    nu: th.Tensor  # nu'
    nu_state: Any  # RMSProp state of nu after the step
    dnu_depsilon: th.Tensor | None  # d nu' / d epsilon (closed form only)
    params: list[th.Tensor]  # phi'
    actor_state: list[dict[str, Any]]  # RMSProp state of the actor after the step
    dparams_dgrads: list[th.Tensor]  # elementwise d phi' / d (actor gradient) (closed form only, else empty)
    grad_entropy: list[th.Tensor]  # d mean(log pi) / d phi (closed form only, else empty)
    grad_safety: list[th.Tensor]  # d mean(Qc) / d phi (closed form only, else empty)
    actor_loss: th.Tensor
    mean_log_prob: th.Tensor  # mean log pi of the actor before the step (its entropy, negated)
    safety_value: th.Tensor  # J_c = mean max Qc(s, a ~ pi) on the batch (the constraint's left side)


class MetaStep(NamedTuple):
    """The result of :meth:`MetaSACLag.meta_gradients` (Algorithm 1, lines 17-19)."""

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

    SAC with a Lagrangian safety constraint ``E[Qc(s, a)] <= epsilon``, where the threshold ``epsilon`` and the
    temperature ``alpha`` are tuned by meta-gradients through one differentiable RMSProp step of the actor. One
    gradient step is :meth:`train`, written out as Algorithm 1 (lines 12-20) reads: the safety and reward critics, the
    inner steps of ``nu`` and of the actor (Eq. 11), the meta-gradients of ``J_eps`` (Eq. 14) and ``J_alpha``
    (Eq. 15) in closed form (exact, checked against finite differences and against the autograd reference
    ``metasaclag/reference.py``), the outer step of ``epsilon`` and ``alpha``, the commit and the Polyak update.

    How the meta-gradients move ``epsilon`` and ``alpha`` is the outer rule (``outer_rule``, ``outer_rule_kwargs``;
    classes in ``metasaclag/outer_rules.py``):

    - ``"averaged"`` (default; ours): the meta-gradients are averaged over 20 gradient steps and each outer variable
      takes one Rprop step per interval; ``d nu'/d epsilon`` is taken straight through the projection; ``epsilon`` is
      held within 0.05 of the interval's mean ``J_c``;
    - ``"paper"``: Algorithm 1 as written: one RMSProp step of ``epsilon`` (``1e-2``) and one Adam step of ``log
      alpha`` (``3e-3``, Meta-SAC's gradient clipping) after every gradient step, the exact derivative of the
      projection ``nu' = max(0, .)``.

    Neither rule settles ``epsilon`` by its meta-gradient: Eq. 14 has a zero derivative at the inner equilibrium (the
    research pages, ``docs/reproduction.md``, have the analysis and the evidence).

    Defaults: the paper's ``epsilon = 1``, ``alpha = 1``, ``gamma = 0.99`` and RMSProp for ``nu``, the actor and
    ``epsilon`` (``torch.optim.RMSprop``'s own settings); SB3's SAC for the rest; ours where the paper gives none:
    ``nu = 10`` (the smallest initial ``nu`` of Table 1), ``gamma_c = 0.99``, ``nu_learning_rate = 1e-2``.

    :param policy: The policy model to use (``MlpPolicy``, ``MultiInputPolicy``).
    :param env: The environment to learn from (if registered in Gym, can be str). It must report ``info["cost"]``.
    :param learning_rate: Learning rate of the critics, the safety critics and the actor's inner RMSProp step
        (``beta_phi``); it can be a function of the current progress remaining (from 1 to 0).
    :param buffer_size: Size of the replay buffer (``D`` and ``D_s`` each; see ``replay_buffer_kwargs``).
    :param learning_starts: How many steps of the model to collect transitions for before learning starts.
    :param batch_size: Minibatch size for each gradient update.
    :param tau: The soft update coefficient ("Polyak update", between 0 and 1).
    :param gamma: The discount factor ``gamma_r`` of the reward.
    :param train_freq: Update the model every ``train_freq`` steps (or ``(n, "episode")``).
    :param gradient_steps: How many gradient steps to do after each rollout (-1: as many as steps collected).
    :param action_noise: The action noise type (None by default).
    :param replay_buffer_kwargs: Keyword arguments of :class:`~sb3_metasaclag.common.buffers.ConstraintReplayBuffer`
        (``safety_buffer_size``: capacity of ``D_s``; ``initial_state_buffer_size``: capacity of ``D_0``, 10,000).
    :param target_update_interval: Update the target networks every ``target_update_interval`` gradient steps.
    :param gamma_c: Discount factor ``gamma_c`` of the safety critic (Eq. 2).
    :param nu: Initial Lagrange multiplier ``nu`` (paper, Table 1 for its tasks).
    :param nu_learning_rate: Learning rate ``beta_nu`` of ``nu``'s RMSProp (ours: the paper gives none).
    :param epsilon: Initial safety threshold ``epsilon`` (paper: 1).
    :param epsilon_max: Upper bound of ``epsilon``; ``Qc`` is a discounted probability, hence 1.
    :param policy_batch: Transitions of the batches ``B`` (reward critics, ``nu``, actor) and ``B'`` (``epsilon``):
        ``"all"`` (default) draws uniformly from every transition, ``D u D_s``, as Appendix B describes ``D`` ("stores
        all the transitions"), so that the reward critics learn that a violation ends the episode;
        ``"non_violating"`` draws from the non-violating transitions only, as Algorithm 1 (lines 7-10) routes them.
    :param ent_coef: The temperature ``alpha``, SAC's way: ``"auto"`` (default: learned by Eq. 15 from the paper's 1),
        ``"auto_<x>"`` (learned from ``x``) or a float in ``(0, 1]`` (fixed: the fixed-``alpha`` ablation).
    :param target_entropy: Only ``"auto"``: Eq. 15, not a target entropy, moves ``alpha`` (accepted for SAC's API).
    :param learn_epsilon: Take the outer ``epsilon`` step; False gives the fixed-``epsilon`` ablation.
    :param outer_rule: How the meta-gradients move ``epsilon`` and ``alpha``: ``"averaged"`` (default, ours) or
        ``"paper"`` (Algorithm 1 as written); see above.
    :param outer_rule_kwargs: The rule's settings, the parameters of its class in ``metasaclag/outer_rules.py`` (e.g.
        ``dict(epsilon_objective="nonlinear")`` for Eq. 16, ``dict(min_entropy="auto")`` for the averaged rule's
        entropy floor, ``dict(constraint_states="initial")`` for ``nu``'s ``J_c`` at initial states).
    :param violation_threshold: A transition violates the constraint when ``info["cost"]`` exceeds it.
    :param n_initial_states: Reset observations that pre-fill ``D_0`` before learning (Algorithm 1, line 2).
    :param initial_state_batch_size: Batch of ``D_0`` for the ``alpha`` objective.
    :param rmsprop_kwargs: Settings of the RMSProp optimizers (``torch.optim.RMSprop`` arguments but ``lr``;
        non-centered: the closed-form meta-gradients differentiate the plain RMSProp step).
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to average
        the reported success rate, mean episode length, mean reward, cost and violation rate over.
    :param tensorboard_log: The log location for tensorboard (if None, no logging).
    :param policy_kwargs: Additional arguments to be passed to the policy on creation.
    :param verbose: Verbosity level: 0 for no output, 1 for info messages, 2 for debug messages.
    :param seed: Seed for the pseudo random generators.
    :param device: Device (cpu, cuda, ...) on which the code should be run.
    :param replay_buffer_class: ``ConstraintReplayBuffer`` (default) or a subclass of it.
    :param use_sde: SAC's gSDE: not supported (``False`` only; ``SACLag`` and ``RCPOSAC`` take it), nor is
        ``optimize_memory_usage``; ``sde_sample_freq`` and ``use_sde_at_warmup`` are accepted for SAC's API.
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
        epsilon: float = 1.0,
        epsilon_max: float = 1.0,
        policy_batch: Literal["non_violating", "all"] = "all",
        ent_coef: str | float = "auto",
        target_entropy: str | float = "auto",
        learn_epsilon: bool = True,
        outer_rule: Literal["averaged", "paper"] = "averaged",
        outer_rule_kwargs: dict[str, Any] | None = None,
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
        replay_buffer_class: type | None = None,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
        optimize_memory_usage: bool = False,
        _init_setup_model: bool = True,
    ) -> None:
        alpha, learn_alpha = _initial_alpha(ent_coef, target_entropy)
        check_range("ent_coef (the initial alpha)", alpha, 0.0, 1.0, low_open=True)
        self.ent_coef = ent_coef
        self.initial_alpha = alpha
        self.learn_alpha = learn_alpha
        self.learn_epsilon = bool(learn_epsilon)
        # The rule and its settings (outer_rules.py): checked here, set on the model by _setup_model (as in load()).
        self.outer_rule = outer_rule
        self.outer_rule_kwargs = dict(outer_rule_kwargs or {})
        self._rule: OuterRule = make_rule(outer_rule, self.outer_rule_kwargs)
        if (rmsprop_kwargs or {}).get("centered", False):
            raise ValueError(
                "The closed-form meta-gradients need a non-centered RMSProp (rmsprop_kwargs centered=False); the "
                "autograd reference (metasaclag/reference.py) differentiates a centered one"
            )
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
            epsilon=epsilon,
            epsilon_max=epsilon_max,
            policy_batch=policy_batch,
            violation_threshold=violation_threshold,
            n_initial_states=n_initial_states,
            initial_state_batch_size=initial_state_batch_size,
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
            _init_setup_model=_init_setup_model,
        )

    def _setup_model(self) -> None:
        # The rule from its name and settings (load() restores both from the file); its settings on the model.
        self._rule = make_rule(self.outer_rule, self.outer_rule_kwargs)
        self._rule.apply(self)
        super()._setup_model()

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
        self.actor_rmsprop = DifferentiableRMSprop(self.actor.optimizer)  # type: ignore[arg-type]
        self._actor_parameter_names = [name for name, _ in self.actor.named_parameters()]
        self.epsilon_rmsprop: DifferentiableRMSprop | None = None
        # The averaged rule's sums of meta-gradients over its interval (saved with the model).
        if getattr(self, "_meta_sums", None) is None:
            self._meta_sums = {key: th.zeros((), device=self.device) for key in ("epsilon", "log_alpha", "log_prob", "safety")}
            self._meta_count = 0
        else:  # load() restored a model in the middle of an interval, possibly onto another device
            self._meta_sums = {key: value.to(self.device) for key, value in self._meta_sums.items()}
        self._rule.setup(self)  # the optimizers of epsilon and alpha

    # One gradient step ----------------------------------------------------------------------------------------------
    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """``gradient_steps`` gradient steps of Algorithm 1 (lines 12-20), as SB3's ``SAC.train`` runs SAC's."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self._scheduled_optimizers())
        if self._policy_batch_empty():
            return
        logs: dict[str, list[th.Tensor]] = {}
        for gradient_step in range(gradient_steps):
            # Line 12: a batch B for the reward critics, nu and the actor (policy_batch). The safety critics learn from
            # D u D_s: the same batch under policy_batch="all", with one pass of the actor for both critic targets.
            replay_data = self.sample_policy_batch(batch_size)
            shared = self.policy_batch == "all"
            safety_data = replay_data if shared else self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            with th.no_grad():
                next_actions, next_log_prob = self.actor.action_log_prob(safety_data.next_observations)

            # Line 13: the twin safety critics on Eq. 2's target (max of the target critics).
            safety_loss = safety_critic_loss(
                self.safety_critic, self.safety_critic_target, safety_data, next_actions, self.gamma_c
            )
            optimizer_step(self.safety_critic.optimizer, safety_loss)

            # Line 14: the twin reward critics on SAC's soft target (min of the target critics, Eq. 5).
            if not shared:
                with th.no_grad():
                    next_actions, next_log_prob = self.actor.action_log_prob(replay_data.next_observations)
            with th.no_grad():
                alpha = self.alpha
            critic_loss = reward_critic_loss(
                self.critic, self.critic_target, replay_data, next_actions, next_log_prob, alpha, self.gamma
            )
            optimizer_step(self.critic.optimizer, critic_loss)

            # Line 17's batch B' for the epsilon objective; initial states from D_0 for the alpha objective (Eq. 15)
            # and, with constraint_states="initial", for nu's J_c.
            validation = self.sample_policy_batch(self.batch_size).observations if self.learn_epsilon else None
            initial = (
                self.replay_buffer.sample_initial_states(self.initial_state_batch_size, env=self._vec_normalize_env)
                if self.learn_alpha or self.constraint_states == "initial"
                else None
            )

            # Lines 15-16: the inner steps nu' (Eq. 11 in nu) and phi' (Eq. 11 in phi), kept uncommitted.
            inner = self.inner_step(
                replay_data.observations,
                self.epsilon.detach(),
                self.alpha.detach(),
                initial if self.constraint_states == "initial" else None,
            )
            # Lines 17-19: d J_eps / d epsilon (Eq. 14) and d J_alpha / d alpha (Eq. 15) through phi'.
            meta = self.meta_gradients(inner, validation, initial)
            # The outer rule moves epsilon and alpha by them (outer_rules.py).
            self._rule.outer_step(self, meta)

            # Line 20: commit nu', phi' and their RMSProp states.
            self.actor_rmsprop.commit(inner.params, inner.actor_state)
            self.lagrangian.commit(inner.nu, inner.nu_state)

            step_logs = dict(
                safety_critic_loss=safety_loss,
                critic_loss=critic_loss,
                actor_loss=inner.actor_loss,
                nu_clipped=(inner.nu <= 0).float(),
                entropy=-inner.mean_log_prob,
                safety_value=inner.safety_value,
                epsilon_objective=meta.epsilon_objective,
                epsilon_meta_grad=meta.grad_epsilon,
                alpha_objective=meta.alpha_objective,
                alpha_meta_grad=meta.grad_alpha,
            )
            for key, value in step_logs.items():
                if value is not None:  # None: the objective of an epsilon or alpha that is not learned
                    logs.setdefault(key, []).append(value.detach())
            # Polyak update of both target critics.
            if gradient_step % self.target_update_interval == 0:
                self._polyak_update_targets()
        self._record_train_logs(gradient_steps, logs)

    # The inner steps and the meta-gradients, as functions of their inputs (the tests differentiate them) -------------
    def inner_step(
        self,
        observations: Any,
        epsilon: th.Tensor | float,
        alpha: th.Tensor | float,
        constraint_observations: Any | None = None,
    ) -> InnerStep:
        """Lines 15-16: the inner updates ``nu'`` and ``phi'`` on a batch of states, and what their derivatives need.

        The actor loss of Eq. 11 is ``alpha * A - V`` with ``A = mean log pi`` and ``V = R - nu' C`` (``R = mean Qr``,
        ``C = mean Qc``), so its gradient ``g = alpha grad A - grad V`` is linear in ``alpha`` and in ``nu'``
        (``d g / d nu' = grad C``), and RMSProp updates each weight from its own gradient only. Hence
        ``d phi'/d epsilon = D * grad C * d nu'/d epsilon`` and ``d phi'/d alpha = D * grad A``, where ``D`` is the
        elementwise derivative of the RMSProp step: exact meta-gradients from first-order gradients, without
        differentiating through a backward pass. ``grad C`` is computed only when ``epsilon`` is learned.

        ``nu``'s step measures ``J_c`` on ``constraint_observations`` when given (``constraint_states="initial"``),
        else on the batch, as Eq. 11 does; the actor's penalty ``C`` is always the batch's.
        """
        actions, log_prob = self.actor.action_log_prob(observations)
        qr, qc = self.twin_q_values(observations, actions)
        safety_term = qc.amax(dim=1).mean()
        constraint_value = safety_term if constraint_observations is None else self.constraint_value(constraint_observations)
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

    def meta_gradients(self, inner: InnerStep, validation_observations: Any, initial_observations: Any) -> MetaStep:
        """Lines 17-19 without changing the model: ``d J_eps / d epsilon`` on the batch ``B'``, the updated
        ``epsilon'`` and ``d J_alpha / d alpha`` (Eq. 15 evaluated with ``epsilon'``) on initial states, each the dot
        product of the objective's gradient in ``phi'`` with ``d phi' / d epsilon`` or ``d phi' / d alpha``."""
        j_eps, grad_epsilon, epsilon_next, epsilon_state = None, None, self.epsilon.detach(), None
        if self.learn_epsilon:  # Eq. 14 (or 16) on the resampled batch B'
            assert inner.dnu_depsilon is not None
            params = [param.detach().requires_grad_(True) for param in inner.params]  # leaves sharing phi' storage
            j_eps = self.epsilon_objective_value(params, inner.nu, validation_observations)
            d_params = th.autograd.grad(j_eps, params, allow_unused=True)
            grad_epsilon = triple_dot(d_params, inner.dparams_dgrads, inner.grad_safety) * inner.dnu_depsilon
            epsilon_next, epsilon_state = self._epsilon_step(grad_epsilon)
        j_alpha, grad_alpha = None, None
        if self.learn_alpha:  # Eq. 15 on initial states
            params = [param.detach().requires_grad_(True) for param in inner.params]
            j_alpha = self.alpha_objective_value(params, inner.nu, epsilon_next, initial_observations)
            # The deterministic action does not use the log-std head: its gradients are None.
            d_params = th.autograd.grad(j_alpha, params, allow_unused=True)
            grad_alpha = triple_dot(d_params, inner.dparams_dgrads, inner.grad_entropy)
        return MetaStep(inner, j_eps, grad_epsilon, epsilon_next, epsilon_state, j_alpha, grad_alpha)

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
        ``[0, epsilon_max]``); the averaged rule keeps it until the end of its interval."""
        if self.epsilon_rmsprop is None:
            return self.epsilon.detach(), None
        (epsilon_next,), epsilon_state = self.epsilon_rmsprop.step([grad_epsilon])
        return epsilon_next.clamp(0.0, self.epsilon_max), epsilon_state

    # Saving ---------------------------------------------------------------------------------------------------------
    def _excluded_save_params(self) -> list[str]:
        # Views of optimizers that are saved through their state dicts, and the rule (rebuilt from its name and
        # settings by _setup_model()).
        return [*super()._excluded_save_params(), "epsilon_rmsprop", "actor_rmsprop", "_rule"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        return [*state_dicts, "ent_coef_optimizer", "epsilon_optimizer"], variables
