"""The outer update rules of MetaSACLag: the averaged rule, the paper's rule, the straight-through nu'."""

import numpy as np
import pytest
import torch as th

from sb3_metasaclag import MetaSACLag
from sb3_metasaclag.common.lagrangian import LagrangeMultiplier

SMALL = dict(
    learning_starts=50, batch_size=32, n_initial_states=8, initial_state_batch_size=8, policy_kwargs=dict(net_arch=[16])
)


def test_defaults_of_each_rule():
    averaged = MetaSACLag("MlpPolicy", "SafeBandit-v0", **SMALL)
    assert (averaged.outer_rule, averaged.meta_interval, averaged.nu_derivative) == ("averaged", 20, "straight_through")
    assert isinstance(averaged.epsilon_optimizer, th.optim.Rprop) and isinstance(averaged.ent_coef_optimizer, th.optim.Rprop)
    assert averaged.lagrangian.straight_through and averaged.entropy_floor is None
    assert (
        MetaSACLag("MlpPolicy", "SafeBandit-v0", **SMALL, outer_rule_kwargs=dict(min_entropy="auto")).entropy_floor == -1.0
    )  # SAC v2's -dim(A)
    per_dimension = MetaSACLag(
        "MlpPolicy", "SafeNavigation2D-v0", **SMALL, outer_rule_kwargs=dict(min_entropy="-2*dim", max_entropy="0.5*dim")
    )
    assert (per_dimension.entropy_floor, per_dimension.entropy_ceiling) == (-4.0, 1.0)  # 2-D actions
    assert averaged.epsilon_band == 0.05 and averaged.epsilon_objective == "linear"  # J_eps, Eq. 14
    paper = MetaSACLag("MlpPolicy", "SafeBandit-v0", outer_rule="paper", **SMALL)
    assert (paper.outer_rule, paper.meta_interval, paper.nu_derivative) == ("paper", 1, "projected")
    assert isinstance(paper.epsilon_optimizer, th.optim.RMSprop) and isinstance(paper.ent_coef_optimizer, th.optim.Adam)
    assert not paper.lagrangian.straight_through and paper.entropy_floor is None and paper.epsilon_band is None
    assert (paper.epsilon_learning_rate, paper.alpha_learning_rate) == (1e-2, 3e-3)
    assert paper.epsilon_objective == "linear"  # J_eps, Eq. 14
    # An explicit objective is kept under either rule, and through save / load.
    assert (
        MetaSACLag(
            "MlpPolicy", "SafeBandit-v0", **SMALL, outer_rule_kwargs=dict(epsilon_objective="nonlinear")
        ).epsilon_objective
        == "nonlinear"
    )
    assert (
        MetaSACLag(
            "MlpPolicy", "SafeBandit-v0", outer_rule="paper", **SMALL, outer_rule_kwargs=dict(epsilon_objective="nonlinear")
        ).epsilon_objective
        == "nonlinear"
    )


def _recording(model):
    """Wrap model.meta_gradients to record each step's meta-gradients and mean log-probability."""
    records = []
    original = model.meta_gradients

    def spy(*args, **kwargs):
        step = original(*args, **kwargs)
        records.append((step.grad_epsilon.item(), (step.grad_alpha * model.alpha).item(), step.inner.mean_log_prob.item()))
        return step

    model.meta_gradients = spy
    return records


@pytest.mark.parametrize("min_entropy", [-np.inf, 50.0])
def test_averaged_rule_steps_once_per_interval_on_the_mean_meta_gradient(min_entropy):
    interval = 7
    kwargs = {**SMALL, "learning_starts": 1_000}
    model = MetaSACLag(
        "MlpPolicy",
        "SafeBandit-v0",
        epsilon=0.5,
        ent_coef="auto_0.5",
        # the band is tested below
        seed=0,
        **kwargs,
        outer_rule_kwargs=dict(meta_interval=interval, min_entropy=min_entropy, epsilon_band=np.inf),
    )
    model.learn(60)  # fills the buffer, no gradient step yet
    records = _recording(model)
    epsilon0, log_alpha0 = model.epsilon.item(), model.log_ent_coef.item()
    values = [(epsilon0, log_alpha0)]
    for _ in range(2 * interval):
        model.train(gradient_steps=1, batch_size=model.batch_size)
        values.append((model.epsilon.item(), model.log_ent_coef.item()))
    # epsilon and log alpha change only when an interval completes; at the first completion both move, at the second
    # each moves unless the sign of its mean meta-gradient flipped (Rprop then skips that step).
    means = np.asarray(records).reshape(2, interval, 3).mean(axis=1)
    flipped = np.sign(means[0]) != np.sign(means[1])
    for n_updates in range(1, 2 * interval + 1):
        completed = n_updates % interval == 0
        second = n_updates == 2 * interval
        (epsilon, log_alpha), (previous_epsilon, previous_log_alpha) = values[n_updates], values[n_updates - 1]
        assert (epsilon != previous_epsilon) == (completed and not (second and flipped[0])), n_updates
        alpha_flipped = flipped[1] and min_entropy == -np.inf  # below the floor, every step raises alpha
        assert (log_alpha != previous_log_alpha) == (completed and not (second and alpha_flipped)), n_updates
    # The first outer step is Rprop's first step: the initial step size times the sign of the mean meta-gradient.
    first = np.asarray(records[:interval])
    epsilon_after, log_alpha_after = values[interval]
    assert epsilon_after == pytest.approx(epsilon0 + model.epsilon_learning_rate * np.sign(first[:, 0].mean()), abs=1e-7)
    below_floor = -first[:, 2].mean() < min_entropy
    alpha_direction = 1.0 if below_floor else np.sign(first[:, 1].mean())
    assert log_alpha_after == pytest.approx(log_alpha0 + model.alpha_learning_rate * alpha_direction, abs=1e-7)
    assert below_floor == (min_entropy == 50.0)


def test_entropy_floor_raises_alpha_whatever_the_meta_gradient():
    # An unreachable floor: every outer step raises alpha, until it reaches its bound 1.
    model = MetaSACLag(
        "MlpPolicy",
        "SafeBandit-v0",
        ent_coef="auto_0.2",
        seed=0,
        **SMALL,
        outer_rule_kwargs=dict(min_entropy=100.0, meta_interval=5),
    )
    model.learn(300)
    assert model.alpha.item() > 0.2
    free = MetaSACLag(
        "MlpPolicy",
        "SafeBandit-v0",
        ent_coef="auto_0.2",
        seed=0,
        **SMALL,
        outer_rule_kwargs=dict(min_entropy=-np.inf, meta_interval=5),
    )
    free.learn(300)
    assert free.alpha.item() != model.alpha.item()


def test_entropy_ceiling_lowers_alpha_whatever_the_meta_gradient():
    # A ceiling no policy can stay under: every outer step lowers alpha, at Rprop's growing steps.
    model = MetaSACLag(
        "MlpPolicy",
        "SafeBandit-v0",
        seed=0,
        **SMALL,
        outer_rule_kwargs=dict(min_entropy=-200.0, max_entropy=-100.0, meta_interval=5),
    )
    assert (model.entropy_floor, model.entropy_ceiling) == (-200.0, -100.0)
    model.learn(300)
    outer_steps = (300 - SMALL["learning_starts"]) // 5
    assert model.log_ent_coef.item() < -outer_steps * model.alpha_learning_rate  # at least the initial step each time
    free = MetaSACLag("MlpPolicy", "SafeBandit-v0", seed=0, **SMALL, outer_rule_kwargs=dict(meta_interval=5))
    free.learn(300)
    assert free.entropy_ceiling is None and free.alpha.item() > model.alpha.item()


def test_straight_through_derivative_survives_the_projection():
    projected = LagrangeMultiplier(0.01, learning_rate=0.1)
    straight = LagrangeMultiplier(0.01, learning_rate=0.1, straight_through=True)
    for multiplier in (projected, straight):
        for _ in range(5):  # warm RMSProp's average: its very first step is sign-like, with a zero derivative
            multiplier.step(th.tensor(0.5), 0.2)
        multiplier.nu.data.fill_(0.001)
    # J_c far below epsilon: the step takes nu below 0, where the projection clips it.
    for multiplier in (projected, straight):
        nu, _, derivative = multiplier.step_with_derivative(th.tensor(0.0), 0.9)
        assert nu.item() == 0.0
        epsilon = th.tensor(0.9, requires_grad=True)
        differentiable, _ = multiplier.differentiable_step(th.tensor(0.0), epsilon)
        (autograd_derivative,) = th.autograd.grad(differentiable, epsilon)
        assert differentiable.item() == 0.0 and autograd_derivative.item() == pytest.approx(derivative.item())
        if multiplier is projected:
            assert derivative.item() == 0.0
        else:
            # d nu'/d epsilon of the unprojected RMSProp step: nu' decreases as epsilon rises.
            assert derivative.item() < 0.0
    # Off the projection both are the same function.
    for multiplier in (projected, straight):
        multiplier.nu.data.fill_(5.0)
    a = projected.step_with_derivative(th.tensor(0.3), 0.2)
    b = straight.step_with_derivative(th.tensor(0.3), 0.2)
    assert a[0].item() == b[0].item() and a[2].item() == b[2].item() != 0.0


@pytest.mark.parametrize("band", [0.05, (0.0, 0.05), np.inf])
def test_epsilon_band_keeps_epsilon_near_the_measured_safety_value(band):
    model = MetaSACLag(
        "MlpPolicy", "SafeNavigation2DSoft-v0", seed=0, **SMALL, outer_rule_kwargs=dict(epsilon_band=band, meta_interval=5)
    )
    seen = []
    original = model._rule.interval_step

    def spy(model):
        safety = (model._meta_sums["safety"] / model._meta_count).item()
        original(model)
        seen.append((safety, model.epsilon.item()))

    model._rule.interval_step = spy
    model.learn(400)
    assert len(seen) == model._n_updates // 5 > 0
    if np.all(np.isfinite(band)):
        below, above = (band, band) if np.isscalar(band) else band
        assert all(max(0.0, safety - below) - 1e-6 <= epsilon <= min(1.0, safety + above) + 1e-6 for safety, epsilon in seen)
    else:
        # Without the band epsilon starts at 1, far above the safety values measured here: the band is what binds.
        assert any(epsilon > safety + 0.05 for safety, epsilon in seen)


def test_outer_step_bounds_set_the_rprop_step_sizes():
    default = MetaSACLag("MlpPolicy", "SafeBandit-v0", **SMALL)
    assert default.outer_step_bounds == (1e-3, 5.0)
    model = MetaSACLag(
        "MlpPolicy", "SafeBandit-v0", **SMALL, outer_rule_kwargs=dict(outer_step_bounds=(0.1, 2.0), epsilon_learning_rate=0.02)
    )
    for optimizer, lr in ((model.epsilon_optimizer, 0.02), (model.ent_coef_optimizer, 1e-2)):
        assert optimizer.param_groups[0]["step_sizes"] == pytest.approx((0.1 * lr, 2.0 * lr))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(outer_rule_kwargs=dict(epsilon_band=(0.1,))), "pair"),
        (dict(outer_rule_kwargs=dict(epsilon_band="wide")), "pair"),
        (dict(outer_rule_kwargs=dict(epsilon_band=(-0.1, 0.05))), "below"),
        (dict(outer_rule_kwargs=dict(epsilon_band=(0.0, float("nan")))), "above"),
        (dict(outer_rule_kwargs=dict(outer_step_bounds=(0.0, 5.0))), "smallest"),
        (dict(outer_rule_kwargs=dict(outer_step_bounds=(2.0, 1.0))), "largest"),
        (dict(outer_rule_kwargs=dict(outer_step_bounds=1.0)), "pair"),
        (dict(outer_rule="paper", outer_rule_kwargs=dict(outer_step_bounds=(0.1, 5.0))), "paper"),
        (dict(outer_rule="paper", outer_rule_kwargs=dict(epsilon_band=(0.0, 0.05))), "paper"),
    ],
)
def test_bad_band_or_step_bounds_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MetaSACLag("MlpPolicy", "SafeBandit-v0", **kwargs, **SMALL)


def test_constraint_measured_at_initial_states_drives_nu_and_the_band():
    model = MetaSACLag(
        "MlpPolicy",
        "SafeNavigation2DSoft-v0",
        seed=0,
        **SMALL,
        outer_rule_kwargs=dict(constraint_states="initial"),
    )
    model.learn(60)
    buffer = model.replay_buffer
    batch = buffer.sample(32).observations
    initial = buffer.sample_initial_states(32)
    th.manual_seed(1)
    on_initial = model.inner_step(batch, model.epsilon.detach(), model.alpha.detach(), initial)
    th.manual_seed(1)
    batch_values = model.twin_q_values(batch, model.actor.action_log_prob(batch)[0])  # the batch's actions come first
    expected = model.constraint_value(initial)
    assert on_initial.safety_value.item() == pytest.approx(expected.item())
    nu_from_initial = model.lagrangian.step_with_derivative(expected, model.epsilon.detach())[0]
    # nu' is nu's RMSProp step on J_c(initial) - epsilon: the batch's J_c plays no part.
    assert on_initial.nu.item() == pytest.approx(nu_from_initial.item(), rel=1e-6)
    batch_value = batch_values[1].amax(dim=1).mean().item()
    assert abs(batch_value - expected.item()) > 1e-6  # the two measures differ here, so the check above can fail
    with pytest.raises(ValueError, match="constraint_states must be one of"):
        MetaSACLag("MlpPolicy", "SafeBandit-v0", **SMALL, outer_rule_kwargs=dict(constraint_states="replay"))


#: (epsilon, alpha, nu) after 100, 200 and 300 steps of the seed-3 runs below, recorded with the code from before the
#: outer rules became objects (outer_rules.py), one torch thread: the rule objects must reproduce them.
RECORDED = {
    "paper": [
        (0.7682713270187378, 0.9789378046989441, 8.302699089050293),
        (1.0, 0.7750697731971741, 6.589630126953125),
        (1.0, 0.49222904443740845, 5.313547611236572),
    ],
    "averaged": [
        (0.4261583089828491, 0.9900498390197754, 8.44300651550293),
        (0.2685205638408661, 0.9859989285469055, 7.218966484069824),
        (0.10366596281528473, 0.9548054337501526, 6.244815826416016),
    ],
}


@pytest.mark.parametrize("rule", ["paper", "averaged"])
def test_rule_objects_reproduce_the_recorded_trajectories(rule):
    threads = th.get_num_threads()
    th.set_num_threads(1)
    try:
        model = MetaSACLag(
            "MlpPolicy",
            "SafeBandit-v0",
            outer_rule=rule,
            epsilon=0.5,
            learning_starts=50,
            batch_size=32,
            policy_kwargs=dict(net_arch=[16, 16]),
            seed=3,
        )
        seen = []
        for _ in range(3):
            model.learn(100, reset_num_timesteps=False)
            seen.append((model.epsilon.item(), model.alpha.item(), model.lagrangian.value))
    finally:
        th.set_num_threads(threads)
    # float32 values; a relative 1e-6 is their rounding, far below what any change of the rule would move them.
    np.testing.assert_allclose(seen, RECORDED[rule], rtol=1e-6)
