"""The outer-loop analysis on problems whose answer is known in closed form (docs/reproduction.md): Eq. 14 has no
preference between thresholds at the inner equilibrium, the survival objective has one interior optimum, Eq. 16's
negative branch is bistable, and a proportional term damps the loop that a self-tuned threshold closes with ``nu``.

The survival rule built on it was screened and not adopted (its runs and the version that made them are in
docs/outer_loop/); these checks keep the analysis that the research pages quote true."""

from __future__ import annotations

import math

import numpy as np
import pytest


def implicit_survival_gradient(nu: float, reward_value: float, safety_value: float, baseline: float) -> float:
    """``d J_surv / d epsilon`` at the inner equilibrium, ``J_surv = (J_r - b)(1 - J_c)`` with the constraint active:
    ``dJ_r/d epsilon = nu`` (sensitivity theorem) and ``dJ_c/d epsilon = 1`` give ``nu (1 - J_c) - (J_r - b)``."""
    return nu * (1.0 - safety_value) - (reward_value - baseline)


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
