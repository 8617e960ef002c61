"""RCPO-MetaSAC: RCPO's penalised critic with Meta-SAC's meta-gradient temperature."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch as th

from sb3_metasaclag.common.rcpo import rcpo_penalised_value
from sb3_metasaclag.meta_sac_lag.meta_sac_lag import MetaSACLag


class RCPOMetaSAC(MetaSACLag):
    """
    RCPO-MetaSAC (paper Sec. 5.1): the actor ascends RCPO's penalised critic ``min_j (Qr_j - nu * Qc_j)``
    (Tessler et al. 2018), ``nu`` follows Eq. 11 with a fixed ``epsilon``, and ``alpha`` is tuned as in Meta-SAC
    (Wang & Ni 2020, https://arxiv.org/abs/2007.01932): ascent on ``E_{s0}[Q(s0, deterministic pi_phi'(s0))]`` through
    one differentiable RMSProp step of the actor, with ``Q`` the penalised critic.

    It is :class:`MetaSACLag` with the penalised critic and without the outer ``epsilon`` step: same arguments, except
    ``epsilon`` (fixed; default 0.5, the middle of Table 1's values) and no ``learn_epsilon`` /
    ``epsilon_objective`` / ``epsilon_learning_rate``.
    """

    penalised_value = staticmethod(rcpo_penalised_value)  # type: ignore[assignment]

    def __init__(self, policy: Any, env: Any, epsilon: float = 0.5, **kwargs: Any) -> None:
        for name in ("learn_epsilon", "epsilon_objective", "epsilon_learning_rate", "epsilon_batch"):
            if name in kwargs:
                raise TypeError(f"RCPOMetaSAC keeps epsilon fixed: it takes no {name!r}")
        # The baseline as the paper ran it: Meta-SAC's temperature step after every gradient step.
        kwargs.setdefault("outer_rule", "paper")
        super().__init__(policy, env, epsilon=epsilon, learn_epsilon=False, **kwargs)

    def alpha_objective_value(
        self, params: Sequence[th.Tensor], nu: th.Tensor, epsilon: th.Tensor | float, initial_observations: Any
    ) -> th.Tensor:
        """Meta-SAC's objective: the (penalised) critic at initial states, deterministic action of ``phi'``."""
        actions = self.actor_with(params, initial_observations, deterministic=True)
        return self.penalised_value(*self.twin_q_values(initial_observations, actions), nu.detach()).mean()
