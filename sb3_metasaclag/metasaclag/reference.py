"""The autograd reference of Meta SAC-Lag's meta-gradients, kept apart from the production class.

:meth:`~sb3_metasaclag.metasaclag.metasaclag.MetaSACLag.meta_gradients` computes the meta-gradients in closed form
from first-order gradients; :func:`meta_gradients_autograd` computes the same values the way Algorithm 1 reads, by
differentiating through the inner update. The tests compare the two, and both against finite differences.
"""

from __future__ import annotations

from typing import Any

import torch as th

from sb3_metasaclag.metasaclag.metasaclag import InnerStep, MetaSACLag, MetaStep

__all__ = ["meta_gradients_autograd"]


def meta_gradients_autograd(
    model: MetaSACLag, observations: Any, validation_observations: Any, initial_observations: Any
) -> MetaStep:
    """Steps 3-6 of ``model`` as :meth:`MetaSACLag.meta_gradients` computes them (same values), without changing the
    model: autograd differentiates through the actor's backward pass (``create_graph=True``) and the RMSProp step, as a
    direct reading of Algorithm 1 would. Slower; the tests use it to verify the closed form (it also differentiates a
    centered RMSProp). The closed form's intermediate terms
    (``dnu_depsilon``, ``dparams_dgrads``, ``grad_entropy``, ``grad_safety``) are None or empty here."""
    epsilon = model.epsilon.detach().clone().requires_grad_(True)
    alpha = model.alpha.detach().clone().requires_grad_(True)
    actions, log_prob = model.actor.action_log_prob(observations)
    qr, qc = model.twin_q_values(observations, actions)
    constraint_term = (
        model.constraint_value(initial_observations) if model.constraint_states == "initial" else qc.amax(dim=1).mean()
    )
    new_nu, nu_state = model.lagrangian.differentiable_step(constraint_term, epsilon)
    actor_loss = alpha * log_prob.mean() - model.penalised_value(qr, qc, new_nu).mean()
    params = model.actor_rmsprop.params
    grads = th.autograd.grad(actor_loss, params, create_graph=True)
    new_params, actor_state = model.actor_rmsprop.step(grads)
    j_eps, grad_epsilon, epsilon_next, epsilon_state = None, None, model.epsilon.detach(), None
    if model.learn_epsilon:
        j_eps = model.epsilon_objective_value(new_params, new_nu, validation_observations)
        (grad_epsilon,) = th.autograd.grad(j_eps, epsilon, retain_graph=True)
        epsilon_next, epsilon_state = model._epsilon_step(grad_epsilon)
    j_alpha, grad_alpha = None, None
    if model.learn_alpha:
        j_alpha = model.alpha_objective_value(new_params, new_nu, epsilon_next, initial_observations)
        (grad_alpha,) = th.autograd.grad(j_alpha, alpha)
    inner = InnerStep(
        new_nu.detach(),
        nu_state,
        None,
        [param.detach() for param in new_params],
        actor_state,
        [],
        [],
        [],
        actor_loss.detach(),
        log_prob.mean().detach(),
        constraint_term.detach(),
    )
    return MetaStep(inner, j_eps, grad_epsilon, epsilon_next, epsilon_state, j_alpha, grad_alpha)
