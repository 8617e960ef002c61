"""The Lagrange multiplier ``nu`` of the constrained policy objective (paper Eq. 11)."""

from __future__ import annotations

from typing import Any

import torch as th

from sb3_metasaclag.common.diff_optim import DifferentiableRMSprop

__all__ = ["LagrangeMultiplier", "PIDLagrangeMultiplier"]


NU_OPTIMIZERS = ("rmsprop", "sgd")


def _check_bounds(initial_value: float, max_value: float) -> None:
    """Raise a ValueError unless ``0 <= initial_value <= max_value``."""
    if initial_value < 0:
        raise ValueError(f"The initial Lagrange multiplier nu must be >= 0, got {initial_value}")
    if not max_value >= initial_value:
        raise ValueError(f"The largest Lagrange multiplier nu_max must be >= the initial nu {initial_value}, got {max_value}")


class LagrangeMultiplier:
    """``nu >= 0`` of ``L = J_r - nu * (J_c - epsilon)``, descended with RMSProp (or plain gradient steps) and projected
    on ``nu >= 0``.

    The gradient of ``L`` with respect to ``nu`` is ``-(J_c - epsilon)``: ``nu`` grows while the constraint
    estimate ``J_c = E[Qc(s, a ~ pi)]`` exceeds the threshold ``epsilon`` and shrinks otherwise.

    :param initial_value: Initial ``nu`` (``>= 0``).
    :param learning_rate: RMSProp learning rate ``beta_nu``.
    :param optimizer_kwargs: Other ``torch.optim.RMSprop`` arguments (``alpha``, ``eps``, ...).
    :param device: PyTorch device.
    :param optimizer: ``"rmsprop"`` (the paper's; its step is about ``learning_rate`` whatever the size of a steady gap
        ``J_c - epsilon``) or ``"sgd"`` (a plain gradient step, ``learning_rate * (J_c - epsilon)``: proportional to the
        gap, so a small persistent gap moves ``nu`` slowly).
    :param max_value: Upper end of the projection of ``nu`` (``inf``: none, the paper's ``nu >= 0`` only).
    :param straight_through: Differentiate ``nu'`` through its projection on ``nu >= 0`` as if it were absent
        (``d nu'/d epsilon`` of the unprojected step). The exact derivative (False, the paper's reading) is 0 wherever
        the projection is active, which freezes a meta-learned ``epsilon`` there (the "dead zone", issue 12).
    """

    def __init__(
        self,
        initial_value: float,
        learning_rate: float,
        optimizer_kwargs: dict[str, Any] | None = None,
        device: th.device | str = "cpu",
        straight_through: bool = False,
        max_value: float = float("inf"),
        optimizer: str = "rmsprop",
    ) -> None:
        _check_bounds(initial_value, max_value)
        if optimizer not in NU_OPTIMIZERS:
            raise ValueError(f"The optimizer of nu must be one of {NU_OPTIMIZERS}, got {optimizer!r}")
        self.straight_through = bool(straight_through)
        self.max_value = float(max_value)
        self.nu = th.tensor(float(initial_value), device=device, requires_grad=True)
        self._differentiable: DifferentiableRMSprop | None = None
        if optimizer == "sgd":
            self.optimizer: th.optim.Optimizer = th.optim.SGD([self.nu], lr=learning_rate)
        else:
            self.optimizer = th.optim.RMSprop([self.nu], lr=learning_rate, **(optimizer_kwargs or {}))
            self._differentiable = DifferentiableRMSprop(self.optimizer)  # type: ignore[arg-type]

    def _raw_step(self, grad: th.Tensor) -> tuple[th.Tensor, Any]:
        """``nu - step(grad)`` before the projection, and the optimizer state it leads to."""
        if self._differentiable is None:
            return self.nu.detach() - self.optimizer.param_groups[0]["lr"] * grad, None
        (new_nu,), states = self._differentiable.step([grad], [self.nu.detach()])
        return new_nu, states

    @property
    def value(self) -> float:
        return float(self.nu.item())

    @staticmethod
    def gradient(constraint_value: th.Tensor, epsilon: th.Tensor | float) -> th.Tensor:
        """``dL/dnu = -(J_c - epsilon)`` (Eq. 11)."""
        return -(constraint_value - epsilon)

    def step_with_derivative(
        self, constraint_value: th.Tensor, epsilon: th.Tensor | float
    ) -> tuple[th.Tensor, Any, th.Tensor]:
        """``nu'`` as :meth:`differentiable_step` computes it, without a graph, and its derivative ``d nu' / d epsilon``.

        ``dL/dnu = epsilon - J_c`` has derivative 1 in ``epsilon``, so ``d nu'/d epsilon`` is the derivative of the
        optimizer's step in its gradient (``-lr`` for ``"sgd"``), times 0 where the projection is active (unless
        ``straight_through``).
        """
        with th.no_grad():
            grad = self.gradient(constraint_value.detach(), th.as_tensor(epsilon))
            new_nu, states = self._raw_step(grad)
            if self._differentiable is None:
                derivative = th.full_like(new_nu, -self.optimizer.param_groups[0]["lr"])
            else:
                (derivative,) = self._differentiable.step_derivative([grad])
            if not self.straight_through:
                inside = (new_nu > 0) & (new_nu < self.max_value)
                derivative = th.where(inside, derivative, th.zeros_like(derivative))
        return new_nu.clamp(0.0, self.max_value), states, derivative

    def differentiable_step(self, constraint_value: th.Tensor, epsilon: th.Tensor) -> tuple[th.Tensor, Any]:
        """``nu'``: the optimizer's step on ``dL/dnu``, projected on ``[0, max_value]``; a differentiable function of
        ``epsilon``.

        :param constraint_value: ``J_c``, the mean safety-critic value of the current policy (no gradient needed).
        :param epsilon: The safety threshold (keep it in the graph to differentiate ``nu'`` with respect to it).
        :return: ``nu'`` and the pending optimizer state, to pass to :meth:`commit`.
        """
        grad = self.gradient(constraint_value.detach(), epsilon)
        new_nu, states = self._raw_step(grad)
        projected = new_nu.clamp(0.0, self.max_value)
        if self.straight_through:  # the value of the projection, the derivative of the unprojected step
            return new_nu + (projected - new_nu).detach(), states
        return projected, states

    def commit(self, new_nu: th.Tensor, states: Any) -> None:
        """Make ``nu'`` (from :meth:`differentiable_step`) the current value and keep the optimizer state it used."""
        if self._differentiable is None:
            with th.no_grad():
                self.nu.copy_(new_nu.detach())
        else:
            self._differentiable.commit([new_nu], states)

    def step(self, constraint_value: th.Tensor, epsilon: th.Tensor | float) -> None:
        """An ordinary (non-differentiable) step of ``nu``'s optimizer, then the projection on ``[0, max_value]``."""
        self.optimizer.zero_grad()
        self.nu.grad = self.gradient(constraint_value.detach(), th.as_tensor(epsilon).detach()).reshape_as(self.nu)
        self.optimizer.step()
        with th.no_grad():
            self.nu.clamp_(0.0, self.max_value)


class PIDLagrangeMultiplier:
    """``nu`` by a PI controller on the constraint gap (the PID Lagrangian of Stooke, Achiam and Abbeel 2020, without
    its derivative term): with ``e = J_c - epsilon``,

        I' = clip(I + ki * e, 0, max_value),   nu' = clip(I' + kp * e, 0, max_value).

    The integral ``I`` is gradient descent on ``nu``'s Lagrangian with step ``ki`` (proportional to the gap, so a small
    steady gap moves it slowly, where RMSProp's step stays near its learning rate for any gap), clamped at 0 so that it
    cannot wind up below the projection; the proportional term answers a gap at once, which damps the loop that a
    self-tuned ``epsilon`` closes with ``nu``. ``d nu'/d epsilon = -(kp + ki)`` (taken straight through the clamps, so
    that a meta-learned ``epsilon`` has no dead zone at ``nu = 0``). Same interface as :class:`LagrangeMultiplier`.

    :param initial_value: Initial ``nu`` (the integral starts there).
    :param kp: Proportional gain, ``>= 0``.
    :param ki: Integral gain (the step of ``I`` per unit gap and gradient step), ``> 0``.
    :param device: PyTorch device.
    :param max_value: Upper end of ``nu`` and of the integral (``inf``: none).
    """

    straight_through = True

    def __init__(
        self,
        initial_value: float,
        kp: float,
        ki: float,
        device: th.device | str = "cpu",
        max_value: float = float("inf"),
    ) -> None:
        _check_bounds(initial_value, max_value)
        if not kp >= 0:
            raise ValueError(f"The proportional gain kp must be >= 0, got {kp}")
        if not ki > 0:
            raise ValueError(f"The integral gain ki must be > 0, got {ki}")
        self.kp, self.ki, self.max_value = float(kp), float(ki), float(max_value)
        self.nu = th.tensor(float(initial_value), device=device, requires_grad=True)
        self.integral = th.tensor(float(initial_value), device=device)
        # Stateless; present so that the model's save() finds an optimizer of nu as for the other multipliers.
        self.optimizer: th.optim.Optimizer = th.optim.SGD([self.nu], lr=self.ki)

    @property
    def value(self) -> float:
        return float(self.nu.item())

    def step_with_derivative(
        self, constraint_value: th.Tensor, epsilon: th.Tensor | float
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """``nu'``, the new integral (the state to :meth:`commit`) and ``d nu'/d epsilon``, without a graph."""
        with th.no_grad():
            gap = constraint_value.detach() - th.as_tensor(epsilon).detach()
            integral = (self.integral + self.ki * gap).clamp(0.0, self.max_value)
            new_nu = (integral + self.kp * gap).clamp(0.0, self.max_value)
        return new_nu, integral, th.full_like(new_nu, -(self.kp + self.ki))

    def commit(self, new_nu: th.Tensor, integral: th.Tensor) -> None:
        """Make ``nu'`` and its integral (from :meth:`step_with_derivative`) the current values."""
        with th.no_grad():
            self.nu.copy_(new_nu.detach())
            self.integral.copy_(integral.detach())

    def step(self, constraint_value: th.Tensor, epsilon: th.Tensor | float) -> None:
        """One controller step, committed."""
        new_nu, integral, _ = self.step_with_derivative(constraint_value, epsilon)
        self.commit(new_nu, integral)
