"""Meta-gradients of MetaSACLag against central finite differences of the whole inner pipeline (float64)."""

import numpy as np
import pytest
import torch as th

from sb3_metasaclag import MetaSACLag, RCPOMetaSAC
from sb3_metasaclag.metasaclag.reference import meta_gradients_autograd

SEED_INNER = 123
H = 1e-4


@pytest.fixture(autouse=True)
def keep_float64_observations(monkeypatch):
    """SB3 casts Box observations to float32 before the networks; keep float64 for this check."""
    import stable_baselines3.common.policies as sb3_policies

    original = sb3_policies.preprocess_obs
    monkeypatch.setattr(
        sb3_policies,
        "preprocess_obs",
        lambda obs, space, normalize_images=True: obs if obs.dtype == th.float64 else original(obs, space, normalize_images),
    )


def _model(
    epsilon_objective: str | None,
    model_class=MetaSACLag,
    outer_rule: str = "paper",
    constraint_states: str = "batch",
) -> MetaSACLag:
    rule: dict = {} if epsilon_objective is None else {"epsilon_objective": epsilon_objective}
    extra: dict = {} if epsilon_objective is None else {"outer_rule": outer_rule}
    if constraint_states != "batch":
        rule["constraint_states"] = constraint_states
    if rule:
        extra["outer_rule_kwargs"] = rule
    # Tanh networks: the pipeline is smooth, so finite differences do not cross ReLU kinks.
    model = model_class(
        "MlpPolicy",
        "SafeNavigation2D-v0",
        learning_starts=64,
        batch_size=32,
        n_initial_states=16,
        initial_state_batch_size=16,
        **extra,
        nu=5.0,
        # Large inner learning rates make the meta-gradients (products of the two) large enough for float64 differences.
        learning_rate=1e-2,
        nu_learning_rate=0.5,
        epsilon=0.5,
        ent_coef="auto_0.3",
        policy_kwargs=dict(net_arch=[32, 32], activation_fn=th.nn.Tanh),
        seed=0,
    )
    # A few real updates, so that the RMSProp states are warm (the first RMSProp step is ~sign(grad), whose derivative
    # is nearly zero - a check there would be vacuous).
    model.learn(100)
    model.lagrangian.nu.data.fill_(5.0)  # keep nu' away from its projection at 0, where d nu'/d epsilon = 0
    model.policy.double()
    for tensor in (model.epsilon, model.log_ent_coef, model.lagrangian.nu):
        tensor.data = tensor.data.double()
    for optimizer in (model.actor.optimizer, model.lagrangian.optimizer, model.epsilon_optimizer):
        for state in optimizer.state.values():
            for key, value in state.items():
                if key != "step":
                    state[key] = value.double()
    return model


def _batches(model: MetaSACLag):
    rng = np.random.default_rng(0)
    buffer = model.replay_buffer
    main = buffer.observations[: buffer.size()].reshape(-1, buffer.obs_shape[0])
    pick = lambda n: th.as_tensor(main[rng.integers(0, len(main), n)], dtype=th.float64)  # noqa: E731
    initial = th.as_tensor(buffer.initial_states.observations.data[: buffer.initial_states.size()][:16], dtype=th.float64)
    return pick(32), pick(32), initial


def closed_form(model: MetaSACLag, obs, validation, initial):
    """Lines 15-19 of one gradient step as MetaSACLag.train computes them: the inner steps, then the meta-gradients."""
    constraint = initial if model.constraint_states == "initial" else None
    inner = model.inner_step(obs, model.epsilon.detach(), model.alpha.detach(), constraint)
    return model.meta_gradients(inner, validation, initial)


def _compute(method: str, model: MetaSACLag):
    if method == "closed_form":
        return lambda *batches: closed_form(model, *batches)
    return lambda *batches: meta_gradients_autograd(model, *batches)


def _j_eps(model, obs, validation, epsilon, nu_copy, initial=None):
    # Eq. 14 uses nu' as a value ("nu'_copy"): hold it at the unperturbed nu', only phi'(nu'(epsilon)) moves.
    th.manual_seed(SEED_INNER)
    constraint = initial if model.constraint_states == "initial" else None
    inner = model.inner_step(obs, th.tensor(epsilon, dtype=th.float64), model.alpha.detach(), constraint)
    return model.epsilon_objective_value(inner.params, nu_copy, validation).item()


def _j_alpha(model, obs, initial, alpha, epsilon_next):
    th.manual_seed(SEED_INNER)
    constraint = initial if model.constraint_states == "initial" else None
    inner = model.inner_step(obs, model.epsilon.detach(), th.tensor(alpha, dtype=th.float64), constraint)
    return model.alpha_objective_value(inner.params, inner.nu, epsilon_next, initial).item()


@pytest.mark.parametrize(
    "outer_rule, constraint_states",
    [("paper", "batch"), ("averaged", "batch"), ("averaged", "initial")],
)
@pytest.mark.parametrize("epsilon_objective", ["linear", "nonlinear"])
@pytest.mark.parametrize("method", ["closed_form", "autograd"])
def test_meta_gradients_match_finite_differences(epsilon_objective, method, outer_rule, constraint_states):
    # The averaged rule takes the same meta-gradients (with the straight-through nu', equal to the exact derivative
    # off the projection, where finite differences define it) and only steps differently; J_c measured on initial
    # states changes nu'.
    model = _model(epsilon_objective, outer_rule=outer_rule, constraint_states=constraint_states)
    obs, validation, initial = _batches(model)
    compute = _compute(method, model)
    th.manual_seed(SEED_INNER)
    step = compute(obs, validation, initial)
    assert step.inner.nu.item() > 0, "nu' must be off its projection for the check to be meaningful"

    epsilon = model.epsilon.item()
    nu_copy = step.inner.nu.detach()
    fd_eps = (
        _j_eps(model, obs, validation, epsilon + H, nu_copy, initial)
        - _j_eps(model, obs, validation, epsilon - H, nu_copy, initial)
    ) / (2 * H)
    assert abs(fd_eps) > 1e-8, "the epsilon meta-gradient should not vanish here"
    assert step.grad_epsilon.item() == pytest.approx(fd_eps, rel=1e-5)

    alpha = model.alpha.item()
    epsilon_next = step.epsilon.detach()
    fd_alpha = (
        _j_alpha(model, obs, initial, alpha + H, epsilon_next) - _j_alpha(model, obs, initial, alpha - H, epsilon_next)
    ) / (2 * H)
    assert abs(fd_alpha) > 1e-8
    assert step.grad_alpha.item() == pytest.approx(fd_alpha, rel=1e-5)


@pytest.mark.parametrize("learn_epsilon, learn_alpha", [(True, True), (True, False), (False, True), (False, False)])
def test_closed_form_equals_autograd_reference(learn_epsilon, learn_alpha):
    model = _model("linear")
    model.learn_epsilon, model.learn_alpha = learn_epsilon, learn_alpha
    obs, validation, initial = _batches(model)
    th.manual_seed(SEED_INNER)
    fast = closed_form(model, obs, validation, initial)
    th.manual_seed(SEED_INNER)
    reference = meta_gradients_autograd(model, obs, validation, initial)
    if learn_epsilon:
        assert fast.grad_epsilon.item() == pytest.approx(reference.grad_epsilon.item(), rel=1e-9)
    else:
        assert fast.grad_epsilon is None and reference.grad_epsilon is None
    if learn_alpha:
        assert fast.grad_alpha.item() == pytest.approx(reference.grad_alpha.item(), rel=1e-9)
    else:
        assert fast.grad_alpha is None and reference.grad_alpha is None
    for a, b in zip(fast.inner.params, reference.inner.params):
        th.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert fast.inner.nu.item() == pytest.approx(reference.inner.nu.item(), rel=1e-12)


@pytest.mark.parametrize("method", ["closed_form", "autograd"])
def test_rcpo_meta_sac_alpha_meta_gradient_matches_finite_differences(method):
    model = _model(None, model_class=RCPOMetaSAC)
    obs, validation, initial = _batches(model)
    compute = _compute(method, model)
    th.manual_seed(SEED_INNER)
    step = compute(obs, validation, initial)
    assert step.grad_epsilon is None, "RCPO-MetaSAC keeps epsilon fixed"
    alpha, epsilon = model.alpha.item(), model.epsilon.detach()
    fd_alpha = (_j_alpha(model, obs, initial, alpha + H, epsilon) - _j_alpha(model, obs, initial, alpha - H, epsilon)) / (
        2 * H
    )
    assert abs(fd_alpha) > 1e-8
    assert step.grad_alpha.item() == pytest.approx(fd_alpha, rel=1e-5)
