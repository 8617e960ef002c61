"""The Lagrange multiplier ``nu`` of the constrained policy objective (paper Eq. 11)."""

from __future__ import annotations

from typing import Any

import torch as th

from sb3_metasaclag.common.diff_optim import DifferentiableRMSprop

__all__ = ["LagrangeMultiplier"]


def _check_bounds(initial_value: float, max_value: float) -> None:
    """Raise a ValueError unless ``0 <= initial_value <= max_value``."""
    if initial_value < 0:
        raise ValueError(f"The initial Lagrange multiplier nu must be >= 0, got {initial_value}")
    if not max_value >= initial_value:
        raise ValueError(f"The largest Lagrange multiplier nu_max must be >= the initial nu {initial_value}, got {max_value}")


class LagrangeMultiplier:
    """``nu >= 0`` of ``L = J_r - nu * (J_c - epsilon)``, descended with RMSProp and projected on ``nu >= 0``.

    The gradient of ``L`` with respect to ``nu`` is ``-(J_c - epsilon)``: ``nu`` grows while the constraint
    estimate ``J_c = E[Qc(s, a ~ pi)]`` exceeds the threshold ``epsilon`` and shrinks otherwise.

    :param initial_value: Initial ``nu`` (``>= 0``).
    :param learning_rate: RMSProp learning rate ``beta_nu``.
    :param optimizer_kwargs: Other ``torch.optim.RMSprop`` arguments (``alpha``, ``eps``, ...).
    :param device: PyTorch device.
    :param max_value: Upper end of the projection of ``nu`` (``inf``: none, the paper's ``nu >= 0`` only).
    :param straight_through: Differentiate ``nu'`` through its projection on ``nu >= 0`` as if it were absent
        (``d nu'/d epsilon`` of the unprojected step). The exact derivative (False, the paper's reading) is 0 wherever
        the projection is active, which freezes a meta-learned ``epsilon`` there (a "dead zone").
    """

    def __init__(
        self,
        initial_value: float,
        learning_rate: float,
        optimizer_kwargs: dict[str, Any] | None = None,
        device: th.device | str = "cpu",
        straight_through: bool = False,
        max_value: float = float("inf"),
    ) -> None:
        _check_bounds(initial_value, max_value)
        self.straight_through = bool(straight_through)
        self.max_value = float(max_value)
        self.nu = th.tensor(float(initial_value), device=device, requires_grad=True)
        self.optimizer = th.optim.RMSprop([self.nu], lr=learning_rate, **(optimizer_kwargs or {}))
        self._differentiable = DifferentiableRMSprop(self.optimizer)  # type: ignore[arg-type]

    def _raw_step(self, grad: th.Tensor) -> tuple[th.Tensor, Any]:
        """``nu - RMSProp(grad)`` before the projection, and the optimizer state it leads to."""
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
        RMSProp step in its gradient, times 0 where the projection is active (unless ``straight_through``).
        """
        with th.no_grad():
            grad = self.gradient(constraint_value.detach(), th.as_tensor(epsilon))
            new_nu, states = self._raw_step(grad)
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
        self._differentiable.commit([new_nu], states)

    def step(self, constraint_value: th.Tensor, epsilon: th.Tensor | float) -> None:
        """An ordinary (non-differentiable) step of ``nu``'s optimizer, then the projection on ``[0, max_value]``."""
        self.optimizer.zero_grad()
        self.nu.grad = self.gradient(constraint_value.detach(), th.as_tensor(epsilon).detach()).reshape_as(self.nu)
        self.optimizer.step()
        with th.no_grad():
            self.nu.clamp_(0.0, self.max_value)
