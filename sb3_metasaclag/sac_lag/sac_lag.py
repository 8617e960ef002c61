"""SACv2-Lag: SAC-Lagrangian with a fixed safety threshold and SAC v2's automatic temperature."""

from __future__ import annotations

from typing import Any, ClassVar

import torch as th

from sb3_metasaclag.common.buffers import ConstraintReplayBufferSamples
from sb3_metasaclag.common.safe_sac import SafeSACBase, check_range


class SACLag(SafeSACBase):
    """
    SACv2-Lag, the baseline of Meta SAC-Lag (paper Sec. 5.1): the same Lagrangian (Eq. 11), but

    - ``epsilon`` is a fixed hyperparameter (paper Table 1) instead of a meta-learned one;
    - ``nu`` takes a plain RMSProp step on Eq. 11 (projected on ``nu >= 0``), then the actor a plain optimizer step
      (Adam, as SAC) on ``alpha log pi - min Qr + nu max Qc``: nothing is differentiated through;
    - ``alpha`` follows SAC v2 (Haarnoja et al. 2019): ascent to the target entropy ``-dim(A)``.

    Paper: https://arxiv.org/abs/2408.07962 (baselines), SAC v2: https://arxiv.org/abs/1812.05905

    Takes every argument of :class:`~sb3_metasaclag.common.safe_sac.SafeSACBase` (SAC's, plus ``gamma_c``, ``nu``,
    ``nu_learning_rate``, ``epsilon``, ``violation_threshold``, ...), and:

    :param epsilon: The fixed safety threshold on ``E[Qc]`` (default 0.5, the middle of Table 1's values).
    :param ent_coef: SAC's entropy coefficient: ``"auto"`` / ``"auto_<init>"`` to learn it, or a fixed float.
    :param target_entropy: SAC's target entropy (``"auto"``: ``-dim(A)``).
    """

    policy_aliases: ClassVar = SafeSACBase.policy_aliases

    def __init__(
        self,
        policy: Any,
        env: Any,
        epsilon: float = 0.5,
        ent_coef: str | float = "auto",
        target_entropy: str | float = "auto",
        **kwargs: Any,
    ) -> None:
        check_range("epsilon", epsilon, 0.0, kwargs.get("epsilon_max", 1.0))
        self.ent_coef = ent_coef
        self.target_entropy = target_entropy  # type: ignore[assignment]  # a float after _setup_entropy()
        super().__init__(policy, env, epsilon=epsilon, **kwargs)

    def _setup_entropy(self) -> None:
        self._setup_sac_v2_temperature(self.ent_coef, self.target_entropy)

    def _train_actor(self, replay_data: ConstraintReplayBufferSamples) -> dict[str, th.Tensor]:
        observations = replay_data.observations
        actions, log_prob = self.actor.action_log_prob(observations)
        log_prob = log_prob.reshape(-1, 1)
        qr, qc = self.twin_q_values(observations, actions)
        self.lagrangian.step(qc.amax(dim=1).mean(), self.epsilon.detach())  # Eq. 11 in nu, fixed epsilon
        logs: dict[str, th.Tensor] = {}
        ent_coef_loss = self._sac_v2_temperature_step(log_prob)
        if ent_coef_loss is not None:
            logs["ent_coef_loss"] = ent_coef_loss
        actor_loss = (self.alpha.detach() * log_prob - self.penalised_value(qr, qc, self.nu.detach())).mean()
        # Gradients of the actor only: the critics' weight gradients of this loss are never used.
        parameters = [param for group in self.actor.optimizer.param_groups for param in group["params"]]
        for parameter, grad in zip(parameters, th.autograd.grad(actor_loss, parameters, allow_unused=True)):
            parameter.grad = grad
        self.actor.optimizer.step()
        logs["actor_loss"] = actor_loss
        return logs

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "ent_coef_optimizer"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        return state_dicts + (["ent_coef_optimizer"] if self.ent_coef_optimizer is not None else []), variables
