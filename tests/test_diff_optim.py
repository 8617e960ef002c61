"""The differentiable RMSProp step is torch.optim.RMSprop's, and its closed-form derivative is autograd's."""

import pytest
import torch as th

from sb3_metasaclag.common.diff_optim import DifferentiableRMSprop, rmsprop_update, rmsprop_update_derivative
from sb3_metasaclag.common.lagrangian import LagrangeMultiplier

SETTINGS = [
    {},
    {"alpha": 0.9, "eps": 1e-6},
    {"weight_decay": 0.1},
    {"momentum": 0.9},
    {"centered": True},
    {"maximize": True},
    {"momentum": 0.5, "centered": True, "weight_decay": 0.01},
]


def _problem():
    th.manual_seed(0)
    return [th.randn(7, 5), th.randn(7), th.zeros(3)], [th.randn(5) for _ in range(6)]


@pytest.mark.parametrize("settings", SETTINGS)
def test_same_parameters_and_state_as_torch_rmsprop(settings):
    init, inputs = _problem()
    reference = [p.clone().requires_grad_(True) for p in init]
    ours = [p.clone().requires_grad_(True) for p in init]
    torch_opt = th.optim.RMSprop(reference, lr=0.01, **settings)
    our_opt = th.optim.RMSprop(ours, lr=0.01, **settings)
    differentiable = DifferentiableRMSprop(our_opt)

    def loss(params, x):  # the last parameter gets a zero gradient: the sqrt(0) case
        return ((params[0] @ x + params[1]) ** 2).sum() + 0.0 * params[2].sum()

    for x in inputs:
        torch_opt.zero_grad()
        loss(reference, x).backward()
        torch_opt.step()
        grads = th.autograd.grad(loss(ours, x), ours)
        new_params, states = differentiable.step(grads)
        differentiable.commit(new_params, states)
    for a, b in zip(reference, ours):
        assert th.equal(a, b)
    for a, b in zip(reference, ours):
        for key, value in torch_opt.state[a].items():
            assert th.equal(value, our_opt.state[b][key]), key
    # The real optimizer can take over after the differentiable steps (and the other way round).
    our_opt.load_state_dict(torch_opt.state_dict())


def test_step_does_not_modify_anything_until_commit():
    param = th.ones(3, requires_grad=True)
    optimizer = th.optim.RMSprop([param], lr=0.1)
    new_params, _ = DifferentiableRMSprop(optimizer).step([th.ones(3)])
    assert th.equal(param, th.ones(3)) and not optimizer.state
    assert not th.equal(new_params[0], param)


def test_gradient_flows_through_the_step_without_nan_at_zero_gradients():
    param = th.zeros(4, requires_grad=True)
    optimizer = th.optim.RMSprop([param], lr=0.1)
    scale = th.tensor(2.0, requires_grad=True)
    grad = scale * th.tensor([1.0, 0.0, -1.0, 0.0])  # two exactly-zero gradients
    (new,), _ = DifferentiableRMSprop(optimizer).step([grad])
    (d_scale,) = th.autograd.grad(new.sum(), scale)
    assert th.isfinite(d_scale)


@pytest.mark.parametrize("settings", [s for s in SETTINGS if not s.get("centered")])
@pytest.mark.parametrize("warm", [False, True])
def test_closed_form_derivative_matches_autograd(settings, warm):
    th.manual_seed(1)
    param, grad = th.randn(50, dtype=th.float64), th.randn(50, dtype=th.float64, requires_grad=True)
    state = {"square_avg": th.rand(50, dtype=th.float64), "momentum_buffer": th.randn(50, dtype=th.float64)} if warm else {}
    hyper = {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, **settings}
    new, _ = rmsprop_update(param, grad, state, **hyper)
    (expected,) = th.autograd.grad(new.sum(), grad)
    th.testing.assert_close(rmsprop_update_derivative(grad.detach(), state, param=param, **hyper), expected)


def test_centered_derivative_is_refused():
    with pytest.raises(NotImplementedError, match="centered"):
        rmsprop_update_derivative(th.ones(1), {}, lr=0.1, alpha=0.9, eps=1e-8, centered=True)


def test_needs_an_rmsprop_optimizer():
    with pytest.raises(TypeError, match="RMSprop"):
        DifferentiableRMSprop(th.optim.Adam([th.zeros(1, requires_grad=True)]))


def test_lagrange_multiplier_moves_with_the_constraint_and_stays_non_negative():
    multiplier = LagrangeMultiplier(1.0, learning_rate=0.1)
    for _ in range(5):  # constraint violated: J_c > epsilon, nu grows
        multiplier.step(th.tensor(0.8), 0.2)
    assert multiplier.value > 1.0
    for _ in range(200):  # satisfied: nu shrinks to its projection at 0
        multiplier.step(th.tensor(0.0), 0.5)
    assert multiplier.value == 0.0
    with pytest.raises(ValueError, match="nu must be >= 0"):
        LagrangeMultiplier(-1.0, 0.1)


def test_lagrange_differentiable_step_and_its_derivative_agree():
    multiplier = LagrangeMultiplier(2.0, learning_rate=0.1)
    multiplier.step(th.tensor(0.7), 0.5)  # warm state
    epsilon = th.tensor(0.3, requires_grad=True)
    new_nu, _ = multiplier.differentiable_step(th.tensor(0.6), epsilon)
    (expected,) = th.autograd.grad(new_nu, epsilon)
    value, _, derivative = multiplier.step_with_derivative(th.tensor(0.6), 0.3)
    assert value.item() == pytest.approx(new_nu.item())
    assert derivative.item() == pytest.approx(expected.item(), rel=1e-6)
