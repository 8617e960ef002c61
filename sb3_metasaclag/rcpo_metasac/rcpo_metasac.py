"""RCPO-MetaSAC: RCPO's penalised critic with Meta-SAC's meta-gradient temperature."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch as th

from sb3_metasaclag.common.policies import SafeSACPolicy
from sb3_metasaclag.common.rcpo import rcpo_penalised_value
from sb3_metasaclag.metasaclag.metasaclag import MetaSACLag


class RCPOMetaSAC(MetaSACLag):
    """
    RCPO-MetaSAC (paper Sec. 5.1): the actor ascends RCPO's penalised critic ``min_j (Qr_j - nu * Qc_j)``
    (Tessler et al. 2018), ``nu`` follows Eq. 11 with a fixed ``epsilon``, and ``alpha`` is tuned as in Meta-SAC
    (Wang & Ni 2020, https://arxiv.org/abs/2007.01932): ascent on ``E_{s0}[Q(s0, deterministic pi_phi'(s0))]`` through
    one differentiable RMSProp step of the actor, with ``Q`` the penalised critic.

    It is :class:`MetaSACLag` with the penalised critic and without the outer ``epsilon`` step. It takes
    :class:`MetaSACLag`'s arguments (documented there) but ``learn_epsilon``, with two other defaults:

    :param epsilon: The fixed safety threshold (default 0.5, the middle of Table 1's values).
    :param outer_rule: ``"paper"`` (default: the baseline as the paper ran it, Meta-SAC's temperature step after every
        gradient step) or ``"averaged"``.
    """

    penalised_value = staticmethod(rcpo_penalised_value)  # type: ignore[assignment]

    def __init__(
        self,
        policy: str | type[SafeSACPolicy],
        env: Any,
        epsilon: float = 0.5,
        outer_rule: str = "paper",
        **kwargs: Any,
    ) -> None:
        if "learn_epsilon" in kwargs:
            raise TypeError("RCPOMetaSAC keeps epsilon fixed: it takes no learn_epsilon (see MetaSACLag for a learned one)")
        super().__init__(policy, env, epsilon=epsilon, outer_rule=outer_rule, learn_epsilon=False, **kwargs)  # type: ignore[arg-type]

    def alpha_objective_value(
        self, params: Sequence[th.Tensor], nu: th.Tensor, epsilon: th.Tensor | float, initial_observations: Any
    ) -> th.Tensor:
        """Meta-SAC's objective: the (penalised) critic at initial states, deterministic action of ``phi'``."""
        actions = self.actor_with(params, initial_observations, deterministic=True)
        return self.penalised_value(*self.twin_q_values(initial_observations, actions), nu.detach()).mean()
