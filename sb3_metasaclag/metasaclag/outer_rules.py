"""Outer rules of Meta SAC-Lag: how the threshold ``epsilon``, the temperature ``alpha`` and the multiplier ``nu`` move.

A rule is selected the SB3 way, ``MetaSACLag(outer_rule="name", outer_rule_kwargs={...})``; the keyword arguments
are the rule's own settings (its class's parameters). Every rule object has the same small interface:

- ``settings``: the values it gives the model's outer-loop attributes (``meta_interval``, ``epsilon_objective``, ...),
  set on the model by :meth:`~OuterRule.apply`;
- ``setup(model)``: the optimizers of ``epsilon`` and ``alpha`` (and, for the survival rule, its multiplier);
- ``outer_step(model, step)`` for the meta-gradient rules (``"paper"``, ``"averaged"``): how one gradient step's
  meta-gradients move ``epsilon`` and ``alpha``; ``train_step(model, replay_data)`` for the survival rule, which
  computes its own signal.

:class:`PaperRule` (``"paper"``) is Algorithm 1 as written; :class:`AveragedRule` (``"averaged"``, the default, ours)
averages the meta-gradients and steps by their signs.

:class:`SurvivalRule` (``"survival"``, ours) is built on one observation: the paper's ``epsilon`` objective (Eq. 14,
``J_eps = nu J_c - J_r`` with ``nu`` held fixed) has a zero derivative at the inner equilibrium for every ``epsilon``
(sensitivity theorem: ``dJ_r*/d epsilon = nu*``), so it cannot say where the threshold belongs. An objective that
prefers one threshold must import an exchange rate between return and violation. The survival objective does so with
the one a violation-terminated task already has: a violation costs the value still to come. Measured above a baseline
``b`` (the lowest value the reward critics have reported, at most 0), so that the weight of survival stays positive
when rewards are negative (the flaw of Eq. 16's negative branch),

    J_surv = E_{s0} [ (Qr(s0, a) - b) * (1 - Qc(s0, a)) ]      (Eq. 16's positive branch, shifted by b)

the expected value of an episode from its initial states, where a violation counts as the worst outcome. It has an
interior maximum over ``epsilon`` (docs/reproduction.md has the closed forms). Two ways to climb it:

- ``form="unrolled"`` (default): ``d J_surv / d epsilon`` through the actor's inner step, as the paper's closed-form
  meta-gradient (``epsilon -> nu' -> phi'``), with ``J_surv`` evaluated at the deterministic action of ``phi'`` (the
  action the deployed policy takes, as Eq. 15 does for ``alpha``);
- ``form="implicit"``: the equilibrium derivative ``nu (1 - J_c) - (J_r - b)`` from the interval's means of ``nu``,
  ``J_r`` and ``J_c`` at initial states under the stochastic policy (no pass through ``phi'``).

Both are averaged over ``interval`` gradient steps and step ``epsilon`` by Rprop (only the sign counts; the step grows
by 1.2 while it repeats and halves when it flips). ``nu`` is a PI controller on ``J_c`` at initial states
(:class:`~sb3_metasaclag.common.lagrangian.PIDLagrangeMultiplier`), ``alpha`` follows SAC v2's target entropy
``-dim(A)`` (not a meta-gradient: Eq. 15's greedy one-step objective drives ``alpha`` down without end).
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch as th

from sb3_metasaclag.common.diff_optim import DifferentiableRMSprop, triple_dot
from sb3_metasaclag.common.lagrangian import PIDLagrangeMultiplier
from sb3_metasaclag.common.safe_sac import check_range

if TYPE_CHECKING:
    from sb3_metasaclag.common.buffers import ConstraintReplayBufferSamples
    from sb3_metasaclag.metasaclag.metasaclag import MetaSACLag

SURVIVAL_FORMS = ("blend", "unrolled", "implicit")
EPSILON_OBJECTIVES = ("linear", "nonlinear")
CONSTRAINT_STATES = ("batch", "initial")
NU_DERIVATIVES = ("projected", "straight_through")
#: Lower bound of log alpha (alpha >= 2e-9): a numerical guard, far below any useful temperature, so that alpha stays
#: positive in float32 however long the outer steps push it down.
LOG_ALPHA_MIN = -20.0
#: An entropy bound per action dimension: "<k>*dim" is k times dim(A) (SAC v2's target entropy is "-1*dim").
_PER_DIMENSION = re.compile(r"^\s*([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*\*\s*dim\s*$")


def entropy_bound(value: float | str, action_dim: int, name: str = "entropy bound") -> float:
    """An entropy bound in nats: a float as given, ``"auto"`` for ``-dim(A)`` (SAC v2's target entropy) or ``"<k>*dim"``
    for ``k * dim(A)`` (one setting for tasks of any action dimension)."""
    if isinstance(value, str):
        if value == "auto":
            return -float(action_dim)
        match = _PER_DIMENSION.match(value)
        if match is None:
            raise ValueError(f"{name} must be a float, 'auto' or '<k>*dim' (k times dim(A)), got {value!r}")
        return float(match.group(1)) * action_dim
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a float, 'auto' or '<k>*dim' (k times dim(A)), got {value!r}")
    return float(value)


def band_edges(epsilon_band: float | Sequence[float]) -> tuple[float, float]:
    """``(below, above)``: how far ``epsilon`` may sit below and above the mean ``J_c`` (a float: the same both ways)."""
    if isinstance(epsilon_band, (int, float)):
        return float(epsilon_band), float(epsilon_band)
    below, above = epsilon_band
    return float(below), float(above)


def _rprop(parameter: th.Tensor, learning_rate: float, bounds: tuple[float, float]) -> th.optim.Rprop:
    """Rprop ascent with steps between ``bounds`` times ``learning_rate``, its initial step."""
    low, high = bounds
    return th.optim.Rprop([parameter], lr=learning_rate, step_sizes=(low * learning_rate, high * learning_rate), maximize=True)


class OuterRule:
    """Base of the meta-gradient rules: settings with the rule's defaults, checked at construction."""

    name: str = ""

    def __init__(
        self,
        epsilon_objective: str = "linear",
        epsilon_learning_rate: float = 1e-2,
        alpha_learning_rate: float = 1e-2,
        constraint_states: str = "batch",
        nu_derivative: str = "projected",
    ) -> None:
        if epsilon_objective not in EPSILON_OBJECTIVES:
            raise ValueError(f"epsilon_objective must be one of {EPSILON_OBJECTIVES}, got {epsilon_objective!r}")
        if constraint_states not in CONSTRAINT_STATES:
            raise ValueError(f"constraint_states must be one of {CONSTRAINT_STATES}, got {constraint_states!r}")
        if nu_derivative not in NU_DERIVATIVES:
            raise ValueError(f"nu_derivative must be one of {NU_DERIVATIVES}, got {nu_derivative!r}")
        check_range("epsilon_learning_rate", epsilon_learning_rate, 0.0, math.inf, low_open=True, high_open=True)
        check_range("alpha_learning_rate", alpha_learning_rate, 0.0, math.inf, low_open=True, high_open=True)
        self.settings: dict[str, Any] = dict(
            epsilon_objective=epsilon_objective,
            epsilon_learning_rate=float(epsilon_learning_rate),
            alpha_learning_rate=float(alpha_learning_rate),
            constraint_states=constraint_states,
            nu_derivative=nu_derivative,
        )

    def apply(self, model: MetaSACLag) -> None:
        """Set the rule's settings on the model, where its gradient step reads them."""
        for key, value in self.settings.items():
            setattr(model, key, value)
        model.lagrangian_straight_through = self.settings["nu_derivative"] == "straight_through"

    def setup(self, model: MetaSACLag) -> None:
        raise NotImplementedError

    def outer_step(self, model: MetaSACLag, step: Any) -> None:
        raise NotImplementedError


class PaperRule(OuterRule):
    """Algorithm 1, lines 18-19, as written: after every gradient step one RMSProp step of ``epsilon`` on its
    meta-gradient (clipped to ``[0, epsilon_max]``) and one Adam step of ``log alpha`` (Meta-SAC's gradient clipping),
    with the exact derivative of the projection ``nu' = max(0, .)`` (zero where it clips).

    :param epsilon_objective: ``"linear"`` (Eq. 14, ``J_eps``) or ``"nonlinear"`` (Eq. 16, ``J_nl``).
    :param epsilon_learning_rate: RMSProp's learning rate ``beta_epsilon``.
    :param alpha_learning_rate: Adam's learning rate ``beta_alpha`` of ``log alpha``.
    :param alpha_max_grad_norm: Gradient-norm clipping of the ``log alpha`` meta-gradient (None: none).
    :param constraint_states: Where ``nu``'s step measures ``J_c``: ``"batch"`` (Eq. 11) or ``"initial"`` (ours).
    :param nu_derivative: ``"projected"`` (exact) or ``"straight_through"`` (through the projection as if absent).
    """

    name = "paper"

    def __init__(
        self,
        epsilon_objective: str = "linear",
        epsilon_learning_rate: float = 1e-2,
        alpha_learning_rate: float = 3e-3,
        alpha_max_grad_norm: float | None = 0.05,
        constraint_states: str = "batch",
        nu_derivative: str = "projected",
    ) -> None:
        super().__init__(epsilon_objective, epsilon_learning_rate, alpha_learning_rate, constraint_states, nu_derivative)
        if alpha_max_grad_norm is not None:
            check_range("alpha_max_grad_norm", alpha_max_grad_norm, 0.0, math.inf, low_open=True)
        self.settings.update(
            alpha_max_grad_norm=alpha_max_grad_norm,
            meta_interval=1,
            epsilon_band=None,
            min_entropy=None,
            max_entropy=None,
            outer_step_bounds=None,
        )

    def setup(self, model: MetaSACLag) -> None:
        # Ascent on J_alpha (Eq. 15), as in Meta-SAC; on J_eps (line 18), one RMSProp step per gradient step.
        settings = self.settings
        model.ent_coef_optimizer = th.optim.Adam([model.log_ent_coef], lr=settings["alpha_learning_rate"], maximize=True)
        model.epsilon_optimizer = th.optim.RMSprop(
            [model.epsilon], lr=settings["epsilon_learning_rate"], maximize=True, **model.rmsprop_kwargs
        )
        model.epsilon_rmsprop = DifferentiableRMSprop(model.epsilon_optimizer)  # type: ignore[arg-type]

    def outer_step(self, model: MetaSACLag, step: Any) -> None:
        """One RMSProp step of ``epsilon`` (computed with the meta-gradients) and one Adam step of ``log alpha``."""
        if step.grad_epsilon is not None:
            assert model.epsilon_rmsprop is not None
            model.epsilon_rmsprop.commit([step.epsilon], step.epsilon_state)
        if step.grad_alpha is not None:
            # Ascent in log alpha: d J / d log alpha = alpha * d J / d alpha.
            model.log_ent_coef.grad = (step.grad_alpha * model.alpha).detach()
            if model.alpha_max_grad_norm is not None:
                th.nn.utils.clip_grad_norm_([model.log_ent_coef], model.alpha_max_grad_norm)
            assert model.ent_coef_optimizer is not None
            model.ent_coef_optimizer.step()
            with th.no_grad():
                model.log_ent_coef.clamp_(LOG_ALPHA_MIN, 0.0)


class AveragedRule(OuterRule):
    """The averaged rule (ours, the default): the meta-gradients are averaged over ``meta_interval`` gradient steps and
    each outer variable takes one Rprop step per interval (the step grows by 1.2 while the sign of the averaged
    meta-gradient repeats, halves when it flips, and stays within ``outer_step_bounds`` times its learning rate), so
    that noise shrinks the steps; after its step ``epsilon`` is held within ``epsilon_band`` of the interval's mean
    ``J_c`` (a restoring force).

    :param meta_interval: Gradient steps whose meta-gradients are averaged before one outer step.
    :param epsilon_band: How far ``epsilon`` may sit from the interval's mean ``J_c``: a float, or ``(below, above)``
        (``inf``: no band).
    :param min_entropy: Entropy floor: ``alpha`` rises while ``-E[log pi]`` is below it. A float (nats; ``-inf``:
        none), ``"auto"`` (``-dim(A)``, SAC v2's target) or ``"<k>*dim"``.
    :param max_entropy: Entropy ceiling: ``alpha`` falls while ``-E[log pi]`` is above it; same forms (``inf``: none).
    :param outer_step_bounds: Rprop's smallest and largest step, as multiples of the learning rates.
    :param epsilon_objective: ``"linear"`` (Eq. 14) or ``"nonlinear"`` (Eq. 16).
    :param epsilon_learning_rate: Rprop's initial step of ``epsilon``.
    :param alpha_learning_rate: Rprop's initial step of ``log alpha``.
    :param constraint_states: Where ``nu``'s step (and the band) measures ``J_c``: ``"batch"`` or ``"initial"``.
    :param nu_derivative: ``"straight_through"`` (so that ``epsilon`` does not freeze when ``nu`` reaches 0) or
        ``"projected"``.
    """

    name = "averaged"

    def __init__(
        self,
        meta_interval: int = 20,
        epsilon_band: float | Sequence[float] = 0.05,
        min_entropy: float | str = -math.inf,
        max_entropy: float | str = math.inf,
        outer_step_bounds: Sequence[float] = (1e-3, 5.0),
        epsilon_objective: str = "linear",
        epsilon_learning_rate: float = 1e-2,
        alpha_learning_rate: float = 1e-2,
        constraint_states: str = "batch",
        nu_derivative: str = "straight_through",
    ) -> None:
        super().__init__(epsilon_objective, epsilon_learning_rate, alpha_learning_rate, constraint_states, nu_derivative)
        if isinstance(meta_interval, bool) or int(meta_interval) != meta_interval or meta_interval < 1:
            raise ValueError(f"meta_interval must be a whole number of gradient steps >= 1, got {meta_interval!r}")
        if entropy_bound(min_entropy, 1, "min_entropy") == math.inf:
            raise ValueError(f"min_entropy must lie below inf (-inf: no floor), got {min_entropy!r}")
        if entropy_bound(max_entropy, 1, "max_entropy") == -math.inf:
            raise ValueError(f"max_entropy must lie above -inf (inf: no ceiling), got {max_entropy!r}")
        if not isinstance(epsilon_band, (int, float)) and (
            isinstance(epsilon_band, str) or not isinstance(epsilon_band, Sequence) or len(epsilon_band) != 2
        ):
            raise ValueError(f"epsilon_band must be a float or a pair (below, above) of floats, got {epsilon_band!r}")
        below, above = band_edges(epsilon_band)
        if isinstance(epsilon_band, (int, float)):
            check_range("epsilon_band", below, 0.0, math.inf)
        else:
            check_range("epsilon_band (below)", below, 0.0, math.inf)
            check_range("epsilon_band (above)", above, 0.0, math.inf)
        if isinstance(outer_step_bounds, str) or not isinstance(outer_step_bounds, Sequence) or len(outer_step_bounds) != 2:
            raise ValueError(f"outer_step_bounds must be a pair (smallest, largest), got {outer_step_bounds!r}")
        low, high = (float(value) for value in outer_step_bounds)
        check_range("outer_step_bounds (smallest)", low, 0.0, math.inf, low_open=True, high_open=True)
        check_range("outer_step_bounds (largest)", high, low, math.inf, high_open=True)
        self.settings.update(
            meta_interval=int(meta_interval),
            epsilon_band=epsilon_band,
            min_entropy=min_entropy,
            max_entropy=max_entropy,
            outer_step_bounds=(low, high),
            alpha_max_grad_norm=None,
        )

    def setup(self, model: MetaSACLag) -> None:
        if model.meta_interval % model.meta_gradient_every:
            raise ValueError(
                f"meta_interval ({model.meta_interval}) must be a multiple of meta_gradient_every "
                f"({model.meta_gradient_every}): each interval averages the same number of meta-gradients"
            )
        floor, ceiling = model.entropy_floor, model.entropy_ceiling
        if floor is not None and ceiling is not None and floor >= ceiling:
            raise ValueError(f"max_entropy ({ceiling}) must lie above the entropy floor min_entropy ({floor})")
        settings = self.settings
        bounds = settings["outer_step_bounds"]
        model.ent_coef_optimizer = _rprop(model.log_ent_coef, settings["alpha_learning_rate"], bounds)
        model.epsilon_optimizer = _rprop(model.epsilon, settings["epsilon_learning_rate"], bounds)
        model.epsilon_rmsprop = None

    def outer_step(self, model: MetaSACLag, step: Any) -> None:
        """Sum the meta-gradients of ``meta_interval`` gradient steps, then take one outer step on their means."""
        sums = model._meta_sums
        with th.no_grad():
            if step.grad_epsilon is not None:
                sums["epsilon"] += step.grad_epsilon.detach()
            if step.grad_alpha is not None:
                sums["log_alpha"] += (step.grad_alpha * model.alpha).detach()  # d J / d log alpha
            if step.inner.mean_log_prob is not None:
                sums["log_prob"] += step.inner.mean_log_prob
            if step.inner.safety_value is not None:
                sums["safety"] += step.inner.safety_value
        model._meta_count += 1
        if model._meta_count >= model.meta_interval // model.meta_gradient_every:
            self.interval_step(model)

    def interval_step(self, model: MetaSACLag) -> None:
        """One Rprop step of ``epsilon`` and of ``log alpha`` from the interval's mean meta-gradients. ``alpha`` rises
        whenever the policy's entropy is below ``min_entropy`` and falls whenever it is above ``max_entropy``, whatever
        Eq. 15 says (neither by default)."""
        count = float(model._meta_count)
        sums = model._meta_sums
        if model.learn_epsilon:
            model.epsilon_optimizer.zero_grad()
            model.epsilon.grad = (sums["epsilon"] / count).reshape_as(model.epsilon)
            model.epsilon_optimizer.step()
            with th.no_grad():
                if model.epsilon_band is not None:
                    # The restoring force: epsilon stays within the band around the interval's mean J_c, so nu can
                    # neither wind up against a threshold the policy cannot reach nor fall into its projection for long.
                    below, above = band_edges(model.epsilon_band)
                    safety = sums["safety"] / count
                    model.epsilon.copy_(th.minimum(th.maximum(model.epsilon, safety - below), safety + above))
                model.epsilon.clamp_(0.0, model.epsilon_max)
        if model.learn_alpha:
            assert model.ent_coef_optimizer is not None
            grad = sums["log_alpha"] / count
            entropy = -sums["log_prob"] / count
            floor, ceiling = model.entropy_floor, model.entropy_ceiling
            if floor is not None:
                grad = th.where(entropy < floor, th.ones_like(grad), grad)
            if ceiling is not None:
                grad = th.where(entropy > ceiling, -th.ones_like(grad), grad)
            model.ent_coef_optimizer.zero_grad()
            model.log_ent_coef.grad = grad.reshape_as(model.log_ent_coef)
            model.ent_coef_optimizer.step()
            with th.no_grad():
                model.log_ent_coef.clamp_(LOG_ALPHA_MIN, 0.0)
        for value in sums.values():
            value.zero_()
        model._meta_count = 0


def survival_objective(qr: th.Tensor, qc: th.Tensor, baseline: th.Tensor | float) -> th.Tensor:
    """``mean((Qr - b) * (1 - Qc))`` with ``Qc`` clipped to ``[0, 1]`` (a discounted probability of a violation)."""
    return ((qr - baseline) * (1.0 - qc.clamp(0.0, 1.0))).mean()


def implicit_survival_gradient(nu: float, reward_value: float, safety_value: float, baseline: float) -> float:
    """``d J_surv / d epsilon`` at the inner equilibrium, ``J_surv = (J_r - b)(1 - J_c)`` with the constraint active:
    ``dJ_r/d epsilon = nu`` (sensitivity theorem) and ``dJ_c/d epsilon = 1`` give ``nu (1 - J_c) - (J_r - b)``."""
    return nu * (1.0 - safety_value) - (reward_value - baseline)


def exchange_rate(reward_value: th.Tensor, safety_value: th.Tensor, baseline: th.Tensor | float) -> th.Tensor:
    """``J_surv``'s price of a unit of ``J_c`` in units of ``J_r``: ``(J_r - b) / (1 - J_c)``, with ``1 - J_c`` kept
    at least 1e-3 (``J_c`` clipped to ``[0, 1]`` as in :func:`survival_objective`)."""
    survival = (1.0 - safety_value.clamp(0.0, 1.0)).clamp_min(1e-3)
    return (reward_value - baseline).clamp_min(0.0) / survival


class SurvivalRule:
    """The survival rule (ours): ``epsilon`` climbs ``J_surv`` (see the module docstring), ``nu`` is a PI controller
    on ``J_c`` at initial states, ``alpha`` follows SAC v2's target entropy.

    :param form: ``"unrolled"`` (the meta-gradient through the actor's inner step, at the deterministic action) or
        ``"implicit"`` (the equilibrium derivative from running means).
    :param interval: Gradient steps whose ``epsilon`` signals are averaged before one outer step.
    :param learning_rate: Rprop's initial step of ``epsilon``.
    :param step_bounds: Rprop's smallest and largest step, as multiples of ``learning_rate``.
    :param deployment_noise: Standard deviation of the Gaussian noise added to the deterministic action (actions scaled
        to ``[-1, 1]``) where the unrolled form evaluates ``J_surv``: the deployed action as a real actuator executes it.
        Without it the best deployed action of a task whose violations are decided by the action itself (a bandit)
        lies on the learned edge of ``Qc``, where half of the seeds end just over the limit.
    :param kp: Proportional gain of ``nu``'s controller.
    :param ki: Integral gain of ``nu``'s controller.
    :param exchange_cap: Cap ``nu`` (and its integral) at ``J_surv``'s own price of a unit of ``J_c``,
        ``(J_r - b) / (1 - J_c)`` at initial states: the actor's gradient of ``J_surv`` is ``(1 - J_c)`` times that
        of the Lagrangian with this ``nu``, so a larger ``nu`` buys safety the objective does not value, and the
        integral cannot wind up where ``J_c`` stays above ``epsilon``.
    """

    name = "survival"
    settings: dict[str, Any] = dict(
        epsilon_objective="survival",
        constraint_states="initial",
        nu_derivative="straight_through",
        meta_interval=1,
        alpha_max_grad_norm=None,
        epsilon_band=None,
        min_entropy=None,
        max_entropy=None,
        outer_step_bounds=None,
        epsilon_learning_rate=None,
        alpha_learning_rate=None,
    )

    def apply(self, model: MetaSACLag) -> None:
        """Set the rule's settings on the model (what the model's logs and checks read)."""
        for key, value in {**self.settings, "meta_interval": self.interval}.items():
            setattr(model, key, value)
        model.lagrangian_straight_through = True

    def __init__(
        self,
        form: str = "blend",
        interval: int = 20,
        learning_rate: float = 1e-2,
        step_bounds: tuple[float, float] = (1e-3, 5.0),
        deployment_noise: float = 0.03,
        kp: float = 5.0,
        ki: float = 0.05,
        exchange_cap: bool = False,
    ) -> None:
        if form not in SURVIVAL_FORMS:
            raise ValueError(f"form must be one of {SURVIVAL_FORMS}, got {form!r}")
        if isinstance(interval, bool) or int(interval) != interval or interval < 1:
            raise ValueError(f"interval must be a whole number of gradient steps >= 1, got {interval!r}")
        if not (0 < learning_rate < math.inf):
            raise ValueError(f"learning_rate must lie in (0, inf), got {learning_rate}")
        if len(step_bounds) != 2 or not (0 < step_bounds[0] <= step_bounds[1] < math.inf):
            raise ValueError(f"step_bounds must be a pair 0 < smallest <= largest < inf, got {step_bounds!r}")
        if not 0 <= deployment_noise < math.inf:
            raise ValueError(f"deployment_noise must lie in [0, inf), got {deployment_noise}")
        if not kp >= 0:
            raise ValueError(f"kp must be >= 0, got {kp}")
        if not ki > 0:
            raise ValueError(f"ki must be > 0, got {ki}")
        self.form = form
        self.interval = int(interval)
        self.learning_rate = float(learning_rate)
        self.step_bounds = (float(step_bounds[0]), float(step_bounds[1]))
        self.deployment_noise = float(deployment_noise)
        self.kp, self.ki = float(kp), float(ki)
        self.exchange_cap = bool(exchange_cap)
        self.baseline: th.Tensor | float = 0.0  # b: the lowest reward value seen, at most 0
        self._sums: dict[str, th.Tensor | float] = dict.fromkeys(("epsilon", "epsilon_square", "nu", "reward", "safety"), 0.0)
        self._count = 0

    # Set-up ---------------------------------------------------------------------------------------------------------
    def setup(self, model: MetaSACLag) -> None:
        """Replace the model's multiplier by the PI controller and create the optimizers of ``epsilon`` and ``alpha``."""
        model.lagrangian = PIDLagrangeMultiplier(  # type: ignore[assignment]
            model.initial_nu, self.kp, self.ki, model.device, model.nu_max
        )
        low, high = self.step_bounds
        model.epsilon_optimizer = th.optim.Rprop(
            [model.epsilon],
            lr=self.learning_rate,
            step_sizes=(low * self.learning_rate, high * self.learning_rate),
            maximize=True,
        )
        model.epsilon_rmsprop = None
        model._setup_sac_v2_temperature(f"auto_{model.initial_alpha}" if model.learn_alpha else model.initial_alpha, "auto")

    # One gradient step (Algorithm 1, lines 15-20, with this rule's outer step) ---------------------------------------
    def train_step(self, model: MetaSACLag, replay_data: ConstraintReplayBufferSamples) -> dict[str, th.Tensor]:
        initial = model.replay_buffer.sample_initial_states(model.initial_state_batch_size, env=model._vec_normalize_env)
        observations = replay_data.observations
        epsilon = model.epsilon.detach()
        alpha = model.alpha.detach()
        # What the inner steps start from: the actor's actions on B, both critics there, J_r and J_c at initial states.
        actions, log_prob = model.actor.action_log_prob(observations)
        qr, qc = model.twin_q_values(observations, actions)
        reward_term, safety_term = qr.amin(dim=1).mean(), qc.amax(dim=1).mean()
        with th.no_grad():
            initial_actions, _ = model.actor.action_log_prob(initial)
            initial_qr, initial_qc = model.q_values(initial, initial_actions)
            reward_value, safety_value = initial_qr.mean(), initial_qc.mean()
            lowest = qr.amin(dim=1).min()
            self.baseline = th.minimum(lowest, th.as_tensor(self.baseline, dtype=lowest.dtype, device=lowest.device))
        # Inner step of nu (PI controller on J_c at initial states), then of the actor (Eq. 11).
        new_nu, integral, dnu_depsilon = model.lagrangian.step_with_derivative(safety_value, epsilon)
        if self.exchange_cap:
            cap = exchange_rate(reward_value, safety_value, self.baseline)
            new_nu, integral = th.minimum(new_nu, cap), th.minimum(integral, cap)
        entropy_term = log_prob.mean()
        params = model.actor_rmsprop.params
        grad_c = th.autograd.grad(safety_term, params, retain_graph=True)
        grad_r = th.autograd.grad(reward_term, params, retain_graph=True)
        grad_a = th.autograd.grad(entropy_term, params)
        grads = [alpha * a - (r - new_nu * c) for a, r, c in zip(grad_a, grad_r, grad_c)]
        logs: dict[str, th.Tensor] = {}
        with th.no_grad():
            new_params, actor_state = model.actor_rmsprop.step(grads)
        if model.learn_epsilon and self.form != "implicit":
            with th.no_grad():
                dparams_dgrads = model.actor_rmsprop.step_derivative(grads)
            leaves = [param.detach().requires_grad_(True) for param in new_params]
            deployed = model.actor_with(leaves, initial, deterministic=True)
            if self.deployment_noise > 0:
                deployed = (deployed + self.deployment_noise * th.randn_like(deployed)).clamp(-1.0, 1.0)
            objective = survival_objective(*model.q_values(initial, deployed), self.baseline)
            d_params = th.autograd.grad(objective, leaves, allow_unused=True)
            signal = triple_dot(d_params, dparams_dgrads, grad_c) * dnu_depsilon
            self._add("epsilon", signal)
            self._add("epsilon_square", signal.double() ** 2)
            logs["epsilon_objective"] = objective.detach()
            logs["epsilon_meta_grad"] = signal.detach()
        # alpha: SAC v2's temperature loss on the same log-probabilities.
        ent_coef_loss = model._sac_v2_temperature_step(log_prob)
        if ent_coef_loss is not None:
            logs["ent_coef_loss"] = ent_coef_loss.detach()
        # Commit the inner steps.
        model.actor_rmsprop.commit(new_params, actor_state)
        model.lagrangian.commit(new_nu, integral)
        self._add("nu", new_nu)
        self._add("reward", reward_value)
        self._add("safety", safety_value)
        self._count += 1
        if self._count >= self.interval:
            self.outer_step(model)
        logs.update(
            actor_loss=(alpha * entropy_term - reward_term + new_nu * safety_term).detach(),
            entropy=-entropy_term.detach(),
            safety_value=safety_value,
            nu_clipped=(new_nu <= 0).float(),
        )
        return logs

    def _add(self, key: str, value: th.Tensor) -> None:
        """Add a step's value to the interval's sum, in float64 and on the value's device (no transfer per step)."""
        self._sums[key] = self._sums[key] + value.detach().double()

    def epsilon_signal(self) -> float:
        """The interval's ``d J_surv / d epsilon``: the mean unrolled meta-gradient, or the equilibrium derivative."""
        count = float(self._count)
        means = {key: float(value) / count for key, value in self._sums.items()}
        unrolled = means["epsilon"]
        if self.form == "unrolled":
            return unrolled
        implicit = implicit_survival_gradient(means["nu"], means["reward"], means["safety"], float(self.baseline))
        if self.form == "implicit":
            return implicit
        # blend: the unrolled mean where it stands out of its own noise (|t| >= 1), else the equilibrium derivative.
        variance = max(means["epsilon_square"] - unrolled**2, 0.0)
        return unrolled if unrolled**2 * count >= variance else implicit

    def outer_step(self, model: MetaSACLag) -> None:
        """One Rprop ascent step of ``epsilon`` on the interval's signal, clipped to ``[0, epsilon_max]``."""
        if model.learn_epsilon:
            model.epsilon_optimizer.zero_grad()
            model.epsilon.grad = th.full_like(model.epsilon, self.epsilon_signal())
            model.epsilon_optimizer.step()
            with th.no_grad():
                model.epsilon.clamp_(0.0, model.epsilon_max)
        self._sums = dict.fromkeys(self._sums, 0.0)
        self._count = 0


#: name -> rule class, for ``outer_rule="name"``.
RULES: dict[str, type] = {"averaged": AveragedRule, "paper": PaperRule, "survival": SurvivalRule}


def make_rule(name: str, kwargs: dict[str, Any] | None) -> Any:
    """The rule object for ``outer_rule=name``, ``outer_rule_kwargs=kwargs`` (a clear error for unknown names)."""
    if name not in RULES:
        raise ValueError(f"outer_rule must be one of {tuple(RULES)}, got {name!r}")
    kwargs = dict(kwargs or {})
    accepted = list(inspect.signature(RULES[name]).parameters)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"outer_rule={name!r} has no setting {', '.join(map(repr, unknown))} (outer_rule_kwargs); its settings: "
            f"{', '.join(accepted)}"
        )
    return RULES[name](**kwargs)
