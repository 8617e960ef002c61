"""A differentiable view of ``torch.optim.RMSprop``, for meta-gradients through an optimizer step.

Meta SAC-Lag (paper Appendix B) updates its inner parameters (``nu`` and the actor ``phi``) with RMSProp and
differentiates the *updated* parameters with respect to the outer ones (``epsilon``, ``alpha``).
:class:`DifferentiableRMSprop` computes the very update rule of ``torch.optim.RMSprop`` out of place, so that the
new parameters stay in the autograd graph, then :meth:`DifferentiableRMSprop.commit` writes the values into the
real parameters and the real optimizer's state. Saving and loading therefore go through the ordinary
``optimizer.state_dict()``, and the differentiable step can be tested against ``torch.optim.RMSprop``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch as th

__all__ = ["DifferentiableRMSprop", "rmsprop_update", "rmsprop_update_derivative"]


def _sqrt(x: th.Tensor) -> th.Tensor:
    """``sqrt`` whose value equals ``x.sqrt()`` and whose gradient at ``x = 0`` is 0 instead of ``inf``.

    A parameter whose gradient is exactly zero (a dead ReLU unit, say) has a zero running average; ``sqrt``'s infinite
    derivative there would turn the meta-gradient into NaN (``inf * 0``).
    """
    positive = x > 0
    return th.where(positive, th.where(positive, x, th.ones_like(x)).sqrt(), th.zeros_like(x))


def rmsprop_update(
    param: th.Tensor,
    grad: th.Tensor,
    state: dict[str, Any],
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    maximize: bool = False,
) -> tuple[th.Tensor, dict[str, Any]]:
    """One RMSprop step, out of place and differentiable (same rule as ``torch.optim.RMSprop``).

    :param param: Current parameter value (may be part of a graph).
    :param grad: Its gradient (may be part of a graph, e.g. from ``autograd.grad(create_graph=True)``).
    :param state: The optimizer state of this parameter (``square_avg`` ...); empty before the first step.
    :return: The new parameter and the new state (the input state is not modified).
    """
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad.add(param, alpha=weight_decay)
    square_avg = state.get("square_avg")
    if square_avg is None:
        square_avg = th.zeros_like(param, memory_format=th.preserve_format)
    square_avg = square_avg.mul(alpha).addcmul(grad, grad, value=1 - alpha)
    new_state: dict[str, Any] = {"step": state.get("step", th.tensor(0.0)) + 1, "square_avg": square_avg}
    if centered:
        grad_avg = state.get("grad_avg")
        if grad_avg is None:
            grad_avg = th.zeros_like(param, memory_format=th.preserve_format)
        grad_avg = grad_avg.lerp(grad, 1 - alpha)
        new_state["grad_avg"] = grad_avg
        avg = _sqrt(square_avg.addcmul(grad_avg, grad_avg, value=-1))
    else:
        avg = _sqrt(square_avg)
    avg = avg.add(eps)
    if momentum > 0:
        buffer = state.get("momentum_buffer")
        if buffer is None:
            buffer = th.zeros_like(param, memory_format=th.preserve_format)
        buffer = buffer.mul(momentum).addcdiv(grad, avg)
        new_state["momentum_buffer"] = buffer
        return param.add(buffer, alpha=-lr), new_state
    return param.addcdiv(grad, avg, value=-lr), new_state


def rmsprop_update_derivative(
    grad: th.Tensor,
    state: dict[str, Any],
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    maximize: bool = False,
    param: th.Tensor | None = None,
) -> th.Tensor:
    """Elementwise derivative ``d new_param / d grad`` of :func:`rmsprop_update` (the update is elementwise).

    With ``g`` the (sign-corrected, weight-decayed) gradient, ``v' = alpha v + (1 - alpha) g^2`` and ``s = sqrt(v')``,
    the step is ``-lr g / (s + eps)`` (also with momentum, whose buffer adds a constant), so its derivative is
    ``-lr (1 / (s + eps) - (1 - alpha) g^2 / (s (s + eps)^2))``. Not available for ``centered=True``.
    """
    if centered:
        raise NotImplementedError("The closed-form derivative of a centered RMSprop step is not implemented")
    sign = -1.0 if maximize else 1.0
    g = sign * grad
    if weight_decay != 0:
        assert param is not None, "weight_decay needs the parameter"
        g = g + weight_decay * param
    square_avg = state.get("square_avg")
    v = (1 - alpha) * g * g if square_avg is None else square_avg * alpha + (1 - alpha) * g * g
    s = _sqrt(v)
    denominator = s + eps
    curvature = th.where(s > 0, (1 - alpha) * g * g / (th.where(s > 0, s, th.ones_like(s)) * denominator**2), th.zeros_like(s))
    # new_param = param - lr * u(g) with g = sign * grad, so d new_param / d grad = -lr * u'(g) * sign.
    return -sign * lr * (1.0 / denominator - curvature)


class DifferentiableRMSprop:
    """Differentiable steps of an existing ``torch.optim.RMSprop`` (one parameter group).

    :param optimizer: The real optimizer; its hyperparameters, parameters and state are used and updated.
    """

    def __init__(self, optimizer: th.optim.RMSprop) -> None:
        if not isinstance(optimizer, th.optim.RMSprop):
            raise TypeError(f"DifferentiableRMSprop needs a torch.optim.RMSprop, got {type(optimizer).__name__}")
        if len(optimizer.param_groups) != 1:
            raise ValueError("DifferentiableRMSprop supports optimizers with a single parameter group")
        self.optimizer = optimizer

    @property
    def params(self) -> list[th.Tensor]:
        """The parameters the optimizer updates."""
        return list(self.optimizer.param_groups[0]["params"])

    def _hyperparameters(self) -> dict[str, Any]:
        group = self.optimizer.param_groups[0]
        keys = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize")
        return {key: group[key] for key in keys}

    def _flat_state(self, params: Sequence[th.Tensor]) -> dict[str, Any]:
        """The optimizer states of all parameters, concatenated into flat vectors (one elementwise update for all)."""
        states = [self.optimizer.state.get(param, {}) for param in params]
        flat: dict[str, Any] = {}
        if states and "step" in states[0]:
            flat["step"] = states[0]["step"]
        for key in ("square_avg", "momentum_buffer", "grad_avg"):
            if any(key in state for state in states):
                flat[key] = th.cat(
                    [state[key].reshape(-1) if key in state else th.zeros(p.numel()) for state, p in zip(states, params)]
                )
        return flat

    def step(
        self, grads: Sequence[th.Tensor], params: Sequence[th.Tensor] | None = None
    ) -> tuple[list[th.Tensor], list[dict[str, Any]]]:
        """Compute the updated parameters without changing anything.

        :param grads: One gradient per parameter (keep them in the graph to differentiate through the step).
        :param params: Values to update (default: the optimizer's parameters).
        :return: New parameters (in the graph) and the new optimizer states, for :meth:`commit`.
        """
        real_params = self.params
        params = real_params if params is None else list(params)
        shapes = [param.shape for param in params]
        sizes = [param.numel() for param in params]
        # All parameters at once, as one flat vector: the update is elementwise.
        flat_param, flat_state = rmsprop_update(
            th.cat([param.reshape(-1) for param in params]),
            th.cat([grad.reshape(-1) for grad in grads]),
            self._flat_state(real_params),
            **self._hyperparameters(),
        )
        new_params = [chunk.view(shape) for chunk, shape in zip(flat_param.split(sizes), shapes)]
        new_states: list[dict[str, Any]] = [{"step": flat_state["step"]} for _ in params]
        for key, value in flat_state.items():
            if key != "step":
                for state, chunk, shape in zip(new_states, value.split(sizes), shapes):
                    state[key] = chunk.view(shape)
        return new_params, new_states

    def step_derivative(self, grads: Sequence[th.Tensor]) -> list[th.Tensor]:
        """Elementwise ``d new_param / d grad`` of :meth:`step` for each parameter (see :func:`rmsprop_update_derivative`)."""
        params = self.params
        flat = rmsprop_update_derivative(
            th.cat([grad.reshape(-1) for grad in grads]),
            self._flat_state(params),
            param=th.cat([param.detach().reshape(-1) for param in params]),
            **self._hyperparameters(),
        )
        return [chunk.view(param.shape) for chunk, param in zip(flat.split([p.numel() for p in params]), params)]

    @th.no_grad()
    def commit(self, new_params: Sequence[th.Tensor], new_states: Sequence[dict[str, Any]]) -> None:
        """Write the values of a :meth:`step` into the real parameters and the optimizer's state (detached)."""
        for param, new_param, new_state in zip(self.params, new_params, new_states):
            param.copy_(new_param)
            state = self.optimizer.state[param]
            for key, value in new_state.items():
                state[key] = value.detach().clone() if key != "step" else value.detach().clone().to(th.float32)


def triple_dot(a: Sequence[th.Tensor | None], b: Sequence[th.Tensor], c: Sequence[th.Tensor]) -> th.Tensor:
    """``sum_i <a_i * b_i, c_i>`` over lists of tensors (``a_i = None`` counts as zero): a meta-gradient from the
    objective's gradient in ``phi'`` (``a``), the elementwise derivative of the step (``b``) and the direction the
    step's gradient moves in (``c``)."""
    return th.stack([(x * y * z).sum() for x, y, z in zip(a, b, c) if x is not None]).sum()
