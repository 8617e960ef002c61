"""The survival rule of MetaSACLag: its signal on problems whose answer is known in closed form, its PI multiplier,
its settings, save / load, and learning on the bandits."""

from __future__ import annotations

import math
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from torch import nn

from sb3_metasaclag import MetaSACLag
from sb3_metasaclag.common.lagrangian import PIDLagrangeMultiplier
from sb3_metasaclag.metasaclag.outer_rules import SurvivalRule, implicit_survival_gradient

SMALL = dict(
    learning_starts=50, batch_size=32, n_initial_states=8, initial_state_batch_size=8, policy_kwargs=dict(net_arch=[16])
)


# Quadratic toys (a scalar decision x, the constraint J_c(x) <= epsilon active) -----------------------------------------
def _equilibrium(epsilon: float, reward, cost_inverse, nu_of_x):
    """The inner equilibrium at ``epsilon``: the decision on the constraint, its return, its multiplier."""
    x = cost_inverse(epsilon)
    return x, reward(x), nu_of_x(x)


POSITIVE = dict(  # J_r = 4 - (x - 2)^2 >= 0, J_c = x / 4; stationarity of J_r - nu J_c: nu = 8 (2 - x)
    reward=lambda x: 4 - (x - 2) ** 2, cost_inverse=lambda eps: 4 * eps, nu_of_x=lambda x: 8 * (2 - x), baseline=0.0
)
NEGATIVE = dict(  # J_r = -(x - 2)^2 <= 0, J_c = x; nu = 2 (2 - x); the lowest value on [0, 1] is -4
    reward=lambda x: -((x - 2) ** 2), cost_inverse=lambda eps: eps, nu_of_x=lambda x: 2 * (2 - x), baseline=-4.0
)


def _survival(epsilon: float, toy: dict) -> float:
    _, reward, _ = _equilibrium(epsilon, toy["reward"], toy["cost_inverse"], toy["nu_of_x"])
    return (reward - toy["baseline"]) * (1 - epsilon)


def _implicit(epsilon: float, toy: dict) -> float:
    _, reward, nu = _equilibrium(epsilon, toy["reward"], toy["cost_inverse"], toy["nu_of_x"])
    return implicit_survival_gradient(nu, reward, epsilon, toy["baseline"])


@pytest.mark.parametrize("toy", [POSITIVE, NEGATIVE], ids=["positive", "negative"])
def test_sensitivity_theorem_and_eq14_has_no_preference(toy):
    # dJ_r*/d epsilon = nu* (finite differences along the equilibria); Eq. 14's derivative nu* dJ_c/d eps - dJ_r*/d eps
    # is then 0 for every epsilon: it cannot say where epsilon belongs.
    for epsilon in (0.05, 0.2, 0.4):
        h = 1e-6
        _, r_plus, _ = _equilibrium(epsilon + h, toy["reward"], toy["cost_inverse"], toy["nu_of_x"])
        _, r_minus, nu = _equilibrium(epsilon - h, toy["reward"], toy["cost_inverse"], toy["nu_of_x"])
        d_reward = (r_plus - r_minus) / (2 * h)
        assert d_reward == pytest.approx(nu, rel=1e-5)
        assert nu * 1.0 - d_reward == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("toy", [POSITIVE, NEGATIVE], ids=["positive", "negative"])
def test_implicit_gradient_is_the_derivative_of_the_survival_objective(toy):
    for epsilon in (0.05, 0.2, 0.3, 0.45):
        h = 1e-6
        finite = (_survival(epsilon + h, toy) - _survival(epsilon - h, toy)) / (2 * h)
        assert _implicit(epsilon, toy) == pytest.approx(finite, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize(
    "toy, optimum",
    [(POSITIVE, 1 / 3), (NEGATIVE, (10 - math.sqrt(52)) / 6)],  # closed forms: 3e^2 - 10e + 4 = 0 for the negative toy
    ids=["positive", "negative"],
)
def test_ascent_on_the_implicit_gradient_finds_the_closed_form_optimum_from_both_sides(toy, optimum):
    grid = np.linspace(0.0, 0.49, 4901)
    assert grid[np.argmax([_survival(e, toy) for e in grid])] == pytest.approx(optimum, abs=1e-3)
    for start in (0.02, 0.49):
        epsilon = start
        for _ in range(4000):
            epsilon = float(np.clip(epsilon + 1e-3 * np.tanh(_implicit(epsilon, toy)), 0.0, 0.49))
        assert epsilon == pytest.approx(optimum, abs=2e-3)


def test_eq16_negative_branch_is_bistable_where_the_baseline_is_not():
    # Eq. 16 for J_r < 0 is E[Qr Qc]: on the negative toy J_r* eps = -(eps - 2)^2 eps, stationary at eps = 2/3, a minimum.
    def eq16(eps: float) -> float:
        return -((eps - 2) ** 2) * eps

    ends = []
    for start in (0.6, 0.7):
        eps = start
        for _ in range(5000):
            eps = float(np.clip(eps + 1e-3 * np.sign(eq16(eps + 1e-6) - eq16(eps - 1e-6)), 0.0, 1.0))
        ends.append(eps)
    assert ends == [0.0, 1.0]  # runs to either end, by the side it starts on
    # The survival objective (baseline -4) has one interior maximum on [0, 1]: from either start, the same end.
    survival_ends = []
    for start in (0.02, 0.95):
        eps = start
        for _ in range(5000):
            eps = float(np.clip(eps + 1e-3 * np.tanh(_implicit(eps, NEGATIVE)), 0.0, 1.0))
        survival_ends.append(eps)
    assert survival_ends[0] == pytest.approx(survival_ends[1], abs=2e-3)


# The unrolled signal on a bandit with closed-form critics ----------------------------------------------------------------
class _Closed(nn.Module):
    """Twin critics that return ``function(action)`` in both columns."""

    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, observations, actions):
        value = self.function(actions[:, :1])
        return value, value


@pytest.mark.parametrize("mean, sign", [(0.15, 1.0), (0.35, 1.0), (0.45, -1.0), (0.6, -1.0)])
def test_unrolled_signal_points_to_the_best_deployed_action(mean, sign):
    # Qr = 10 a and Qc = sigmoid((a - 0.5) / 0.05): (Qr - 0) (1 - Qc) is largest at a = 0.402 (closed form, grid below).
    # The unrolled d J_surv / d epsilon must be positive while the deterministic action is below it, negative above.
    grid = np.linspace(0, 1, 100_001)
    best = grid[np.argmax(10 * grid * (1 - 1 / (1 + np.exp(-(grid - 0.5) / 0.05))))]
    assert best == pytest.approx(0.402, abs=2e-3)
    model = MetaSACLag(
        "MlpPolicy",
        "SafeBandit-v0",
        outer_rule="survival",
        outer_rule_kwargs=dict(form="unrolled", interval=1000, deployment_noise=0.0),
        **SMALL,
    )
    model.critic = _Closed(lambda a: 10 * a)
    model.safety_critic = _Closed(lambda a: th.sigmoid((a - 0.5) / 0.05))
    with th.no_grad():
        model.actor.mu.weight.zero_()
        model.actor.mu.bias.fill_(math.atanh(mean))
        model.actor.log_std.weight.zero_()
        model.actor.log_std.bias.fill_(math.log(0.02))
    # RMSProp's state as after many steps: on its first step the step hardly depends on the gradient (about lr * sign),
    # so d phi' / d epsilon would be of the order of RMSProp's eps alone.
    for param in model.actor.optimizer.param_groups[0]["params"]:
        model.actor.optimizer.state[param] = {"step": th.tensor(100.0), "square_avg": th.full_like(param, 1e-4)}
    observations = th.ones(64, 1)
    model.replay_buffer.sample_initial_states = lambda *args, **kwargs: th.ones(8, 1)

    model._rule.train_step(model, SimpleNamespace(observations=observations))
    assert np.sign(float(model._rule._sums["epsilon"])) == sign


# The PI multiplier ---------------------------------------------------------------------------------------------------
def test_pi_multiplier_steps_and_derivative():
    multiplier = PIDLagrangeMultiplier(2.0, kp=5.0, ki=0.1)
    nu, integral, derivative = multiplier.step_with_derivative(th.tensor(0.4), 0.2)
    assert integral.item() == pytest.approx(2.0 + 0.1 * 0.2)
    assert nu.item() == pytest.approx(2.02 + 5.0 * 0.2)
    assert derivative.item() == pytest.approx(-5.1)
    # The derivative matches finite differences in epsilon where no clamp is active.
    h = 1e-3
    plus, _, _ = multiplier.step_with_derivative(th.tensor(0.4), 0.2 + h)
    minus, _, _ = multiplier.step_with_derivative(th.tensor(0.4), 0.2 - h)
    assert ((plus - minus) / (2 * h)).item() == pytest.approx(-5.1, rel=1e-3)
    multiplier.commit(nu, integral)
    assert multiplier.value == pytest.approx(3.02)


def test_pi_multiplier_integral_cannot_wind_up_below_zero():
    multiplier = PIDLagrangeMultiplier(0.5, kp=1.0, ki=0.1)
    for _ in range(200):  # a long safe stretch: J_c = 0 far below epsilon = 0.5
        multiplier.step(th.tensor(0.0), 0.5)
    assert multiplier.value == 0.0 and multiplier.integral.item() == 0.0
    multiplier.step(th.tensor(0.6), 0.5)  # the first violation answers at once (no debt to pay back)
    assert multiplier.value == pytest.approx(0.01 + 0.1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(initial_value=-1.0, kp=1.0, ki=0.1), "nu must be >= 0"),
        (dict(initial_value=1.0, kp=-1.0, ki=0.1), "kp must be >= 0"),
        (dict(initial_value=1.0, kp=1.0, ki=0.0), "ki must be > 0"),
        (dict(initial_value=2.0, kp=1.0, ki=0.1, max_value=1.0), "nu_max must be >= the initial nu"),
    ],
)
def test_pi_multiplier_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PIDLagrangeMultiplier(**kwargs)


# Settings ------------------------------------------------------------------------------------------------------------
def test_survival_rule_settings_and_errors():
    model = MetaSACLag("MlpPolicy", "SafeBandit-v0", outer_rule="survival", **SMALL)
    assert isinstance(model._rule, SurvivalRule) and model._rule.form == "blend"
    assert isinstance(model.lagrangian, PIDLagrangeMultiplier)
    assert isinstance(model.epsilon_optimizer, th.optim.Rprop) and isinstance(model.ent_coef_optimizer, th.optim.Adam)
    assert model.target_entropy == -1.0  # SAC v2's -dim(A)
    with pytest.raises(TypeError, match="epsilon_band"):  # the averaged rule's setting, not an argument
        MetaSACLag("MlpPolicy", "SafeBandit-v0", outer_rule="survival", epsilon_band=0.1, **SMALL)
    with pytest.raises(ValueError, match="'survival' has no setting 'band'"):
        MetaSACLag("MlpPolicy", "SafeBandit-v0", outer_rule="survival", outer_rule_kwargs=dict(band=0.1), **SMALL)
    with pytest.raises(ValueError, match="form must be one of"):
        MetaSACLag("MlpPolicy", "SafeBandit-v0", outer_rule="survival", outer_rule_kwargs=dict(form="exact"), **SMALL)
    with pytest.raises(ValueError, match="'paper' has no setting 'form'"):
        MetaSACLag("MlpPolicy", "SafeBandit-v0", outer_rule="paper", outer_rule_kwargs=dict(form="blend"), **SMALL)
    for bad in (dict(interval=0), dict(learning_rate=0.0), dict(step_bounds=(2.0, 1.0)), dict(kp=-1.0), dict(ki=0.0)):
        with pytest.raises(ValueError):
            SurvivalRule(**bad)


def test_survival_model_saves_and_loads_its_state(tmp_path):
    model = MetaSACLag(
        "MlpPolicy", "SafeBandit-v0", outer_rule="survival", outer_rule_kwargs=dict(interval=5), seed=0, **SMALL
    )
    model.learn(120)
    model.save(tmp_path / "model.zip")
    loaded = MetaSACLag.load(tmp_path / "model.zip")
    assert loaded.outer_rule == "survival" and loaded._rule.interval == 5
    assert loaded.epsilon.item() == model.epsilon.item() and loaded.alpha.item() == pytest.approx(model.alpha.item())
    assert loaded.lagrangian.value == model.lagrangian.value
    assert loaded.lagrangian.integral.item() == model.lagrangian.integral.item()
    assert loaded._rule.baseline == model._rule.baseline and loaded._rule._count == model._rule._count
    loaded.set_env(model.get_env())
    loaded.learn(20, reset_num_timesteps=False)  # goes on training


# Learning on bandits with a known optimum ----------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ["SafeBandit-v0", "SafeBanditNegative-v0"])
def test_survival_rule_settles_near_the_limit_of_bandits_positive_and_negative(env_id):
    # The same task shifted down by 15 (every reward negative) must give the same answer: the baseline keeps the
    # preference for survival when rewards are negative.
    env = gym.make(env_id)
    model = MetaSACLag(
        "MlpPolicy",
        env,
        outer_rule="survival",
        learning_rate=1e-3,
        batch_size=64,
        policy_kwargs=dict(net_arch=[32, 32]),
        seed=0,
    )
    model.learn(2_500)
    distances, violations = [], 0.0
    for episode in range(20):
        obs, _ = env.reset(seed=episode)
        action, _ = model.predict(obs, deterministic=True)
        distances.append(abs(float(action[0]) - env.unwrapped.constrained_optimum))
        violations += env.step(action)[4]["cost"]
    assert np.mean(distances) < 0.15 and violations == 0.0
    assert 0.0 < model.epsilon.item() < 0.6


def _toy_loop(kp: float, eps0: float, steps: int = 120_000, seed: int = 0) -> np.ndarray:
    """The positive toy with noisy inner steps: x by gradient ascent on J_r - nu J_c, nu by the PI controller on
    J_c - epsilon, epsilon by the sign-saturated implicit survival gradient from running means (step 1e-4)."""
    rng = np.random.default_rng(seed)
    x, integral, eps = 0.0, 10.0, eps0
    nu_bar, reward_bar, cost_bar = integral, 0.0, 0.0
    path = np.empty(steps)
    for t in range(steps):
        reward, cost = 4 - (x - 2) ** 2, x / 4
        gap = cost - eps + 0.05 * rng.standard_normal()
        integral = max(0.0, integral + 1e-2 * gap)
        nu = max(0.0, integral + kp * gap)
        x += 1e-2 * (-2 * (x - 2) - nu / 4 + rng.standard_normal())
        nu_bar += 1e-3 * (nu - nu_bar)
        reward_bar += 1e-3 * (reward - reward_bar)
        cost_bar += 1e-3 * (cost - cost_bar)
        eps = float(np.clip(eps + 1e-4 * np.tanh(implicit_survival_gradient(nu_bar, reward_bar, cost_bar, 0.0)), 0, 1))
        path[t] = eps
    return path


def test_proportional_term_damps_the_epsilon_nu_loop():
    # epsilon integrates nu - nu*, nu integrates J_c - epsilon: a double integrator. With the integral alone (kp = 0)
    # epsilon cycles around the optimum 1/3; the proportional term damps the loop and epsilon settles there.
    for eps0 in (1.0, 0.05):
        cycling = _toy_loop(0.0, eps0)[60_000:]
        damped = _toy_loop(20.0, eps0)[60_000:]
        assert cycling.max() - cycling.min() > 0.2
        assert np.abs(damped - 1 / 3).max() < 0.03


def test_exchange_cap_is_the_survival_objectives_price_of_safety():
    # J_surv = (J_r - b)(1 - J_c): its gradient is (1 - J_c) grad J_r - (J_r - b) grad J_c, i.e. (1 - J_c) times the
    # Lagrangian's with nu = (J_r - b) / (1 - J_c). Checked on values, and as the direction of the objective's gradient.
    from sb3_metasaclag.metasaclag.outer_rules import exchange_rate, survival_objective

    reward, safety, baseline = th.tensor(3.0), th.tensor(0.25), th.tensor(-1.0)
    assert exchange_rate(reward, safety, baseline).item() == pytest.approx((3.0 + 1.0) / 0.75)
    assert exchange_rate(th.tensor(-2.0), th.tensor(1.5), baseline).item() == pytest.approx(0.0)  # J_r below b: 0
    qr, qc = th.tensor([3.0], requires_grad=True), th.tensor([0.25], requires_grad=True)
    grad_r, grad_c = th.autograd.grad(survival_objective(qr, qc, baseline), (qr, qc))
    assert (-grad_c / grad_r).item() == pytest.approx(exchange_rate(reward, safety, baseline).item())
    # In training, nu and the PI integral never exceed the cap of the step that set them.
    model = MetaSACLag(
        "MlpPolicy", "SafeBandit-v0", outer_rule="survival", outer_rule_kwargs=dict(exchange_cap=True), seed=0, **SMALL
    )
    capped = []
    original = model.lagrangian.commit

    def spy(new_nu, integral):
        capped.append((new_nu.item(), integral.item()))
        original(new_nu, integral)

    model.lagrangian.commit = spy
    model.learn(300)
    assert capped and all(nu >= 0 for nu, _ in capped)
    assert max(nu for nu, _ in capped) < 10.0  # the initial nu 10 lies above the cap on this bandit: cut at once
