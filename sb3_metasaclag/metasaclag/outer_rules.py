"""Outer rules of Meta SAC-Lag: how the threshold ``epsilon``, the temperature ``alpha`` and the multiplier ``nu`` move.

A rule is selected the SB3 way, ``MetaSACLag(outer_rule="name", outer_rule_kwargs={...})``; the keyword arguments
are the rule's own settings (its class's parameters). Every rule object has the same small interface:

- ``settings``: the values it gives the model's outer-loop attributes (``meta_interval``, ``epsilon_objective``, ...),
  set on the model by :meth:`~OuterRule.apply`;
- ``setup(model)``: the optimizers of ``epsilon`` and ``alpha``;
- ``outer_step(model, step)``: how one gradient step's meta-gradients
  (:class:`~sb3_metasaclag.metasaclag.metasaclag.MetaStep`) move ``epsilon`` and ``alpha``.

:class:`PaperRule` (``"paper"``) is Algorithm 1 as written; :class:`AveragedRule` (``"averaged"``, the default, ours)
averages the meta-gradients and steps by their signs. Why neither can settle ``epsilon`` by its meta-gradient (Eq. 14
has a zero derivative at the inner equilibrium), and the candidates screened to replace them, is on the research pages
(``docs/reproduction.md``).
"""

from __future__ import annotations

import abc
import inspect
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch as th

from sb3_metasaclag.common.diff_optim import DifferentiableRMSprop
from sb3_metasaclag.common.safe_sac import check_range

if TYPE_CHECKING:
    from sb3_metasaclag.metasaclag.metasaclag import MetaSACLag

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


class OuterRule(abc.ABC):
    """Base of the meta-gradient rules: settings with the rule's defaults, checked at construction."""

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

    @abc.abstractmethod
    def setup(self, model: MetaSACLag) -> None:
        """Create the optimizers of ``epsilon`` and ``alpha`` (once the model's parameters exist)."""

    @abc.abstractmethod
    def outer_step(self, model: MetaSACLag, step: Any) -> None:
        """Move ``epsilon`` and ``alpha`` by one gradient step's meta-gradients (a ``MetaStep``)."""


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
        if model._meta_count >= model.meta_interval:
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


#: name -> rule class, for ``outer_rule="name"``.
RULES: dict[str, type[OuterRule]] = {"averaged": AveragedRule, "paper": PaperRule}


def make_rule(name: str, kwargs: dict[str, Any] | None) -> OuterRule:
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
