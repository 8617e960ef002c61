"""SACv2-Lag: SAC-Lagrangian with a fixed safety threshold and SAC v2's automatic temperature."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
import torch as th
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.type_aliases import GymEnv, Schedule

from sb3_metasaclag.common.buffers import ConstraintReplayBuffer
from sb3_metasaclag.common.policies import SafeSACPolicy
from sb3_metasaclag.common.safe_sac import (
    SafeSACBase,
    check_range,
    optimizer_step,
    reward_critic_loss,
    safety_critic_loss,
)


class SACLag(SafeSACBase):
    """
    SACv2-Lag, the baseline of Meta SAC-Lag (paper Sec. 5.1): the same Lagrangian (Eq. 11), but

    - ``epsilon`` is a fixed hyperparameter (paper Table 1) instead of a meta-learned one;
    - ``nu`` takes a plain RMSProp step on Eq. 11 (projected on ``nu >= 0``), then the actor a plain optimizer step
      (Adam, as SAC) on ``alpha log pi - min Qr + nu max Qc``: nothing is differentiated through;
    - ``alpha`` follows SAC v2 (Haarnoja et al. 2019): ascent to the target entropy ``-dim(A)``.

    Paper: https://arxiv.org/abs/2408.07962 (baselines), SAC v2: https://arxiv.org/abs/1812.05905

    Takes every argument of :class:`~sb3_metasaclag.common.safe_sac.SafeSACBase` (SAC's, plus ``gamma_c``, ``nu``,
    ``nu_learning_rate``, ``epsilon``, ``violation_threshold``, ...; documented there), and:

    :param epsilon: The fixed safety threshold on ``E[Qc]`` (default 0.5, the middle of Table 1's values).
    :param ent_coef: SAC's entropy coefficient: ``"auto"`` / ``"auto_<init>"`` to learn it, or a fixed float.
    :param target_entropy: SAC's target entropy (``"auto"``: ``-dim(A)``).
    :param use_sde: SAC's generalized State-Dependent Exploration (gSDE): the actor's noise matrix is drawn anew every
        ``sde_sample_freq`` environment steps while collecting (-1: once per rollout) and at every gradient step, as
        SAC does; ``use_sde_at_warmup`` uses it instead of uniform actions before ``learning_starts``.
    """

    policy_aliases: ClassVar = SafeSACBase.policy_aliases
    supports_sde: ClassVar[bool] = True

    def __init__(
        self,
        policy: str | type[SafeSACPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        target_update_interval: int = 1,
        gamma_c: float = 0.99,
        nu: float = 10.0,
        nu_learning_rate: float = 1e-2,
        epsilon: float = 0.5,
        epsilon_max: float = 1.0,
        ent_coef: str | float = "auto",
        target_entropy: str | float = "auto",
        policy_batch: Literal["non_violating", "all"] = "all",
        violation_threshold: float = 0.0,
        n_initial_states: int = 32,
        initial_state_batch_size: int = 256,
        rmsprop_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        replay_buffer_class: type[ConstraintReplayBuffer] | None = None,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
        optimize_memory_usage: bool = False,
        _init_setup_model: bool = True,
    ) -> None:
        check_range("epsilon", epsilon, 0.0, epsilon_max)
        self.ent_coef = ent_coef
        self.target_entropy = target_entropy  # type: ignore[assignment]  # a float after _setup_entropy()
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            action_noise=action_noise,
            replay_buffer_kwargs=replay_buffer_kwargs,
            target_update_interval=target_update_interval,
            gamma_c=gamma_c,
            nu=nu,
            nu_learning_rate=nu_learning_rate,
            epsilon=epsilon,
            epsilon_max=epsilon_max,
            policy_batch=policy_batch,
            violation_threshold=violation_threshold,
            n_initial_states=n_initial_states,
            initial_state_batch_size=initial_state_batch_size,
            rmsprop_kwargs=rmsprop_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            replay_buffer_class=replay_buffer_class,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            use_sde_at_warmup=use_sde_at_warmup,
            optimize_memory_usage=optimize_memory_usage,
            _init_setup_model=_init_setup_model,
        )

    def _setup_entropy(self) -> None:
        """``alpha`` as in SAC v2 (Haarnoja et al. 2019): ``"auto"`` (or ``"auto_<init>"``) learns it towards the target
        entropy (``"auto"``: ``-dim(A)``); a float keeps it fixed."""
        ent_coef, target_entropy = self.ent_coef, self.target_entropy
        self.target_entropy = (
            float(-np.prod(self.action_space.shape)) if target_entropy == "auto" else float(target_entropy)  # type: ignore[arg-type]
        )
        self.ent_coef_optimizer: th.optim.Optimizer | None = None
        if isinstance(ent_coef, str):
            if not ent_coef.startswith("auto"):
                raise ValueError(f"ent_coef must be a float, 'auto' or 'auto_<initial value>', got {ent_coef!r}")
            initial = float(ent_coef.split("_")[1]) if "_" in ent_coef else 1.0
            check_range("initial ent_coef", initial, 0.0, math.inf, low_open=True)
            self.log_ent_coef = th.tensor(math.log(initial), device=self.device, requires_grad=True)
            self.ent_coef_optimizer = th.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))
        else:
            check_range("ent_coef", float(ent_coef), 0.0, math.inf, low_open=True)
            self.log_ent_coef = th.tensor(math.log(float(ent_coef)), device=self.device)

    def _scheduled_optimizers(self) -> list[th.optim.Optimizer]:
        # As SB3's SAC: SAC v2's temperature follows the learning-rate schedule too.
        optimizers = super()._scheduled_optimizers()
        return optimizers if self.ent_coef_optimizer is None else [*optimizers, self.ent_coef_optimizer]

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """``gradient_steps`` gradient steps of SACv2-Lag, as SB3's ``SAC.train`` with a safety critic and ``nu``."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self._scheduled_optimizers())
        if self._policy_batch_empty():
            return
        logs: dict[str, list[th.Tensor]] = {}
        for gradient_step in range(gradient_steps):
            # A batch B for the reward critics, nu and the actor; the safety critics learn from D u D_s (the same batch
            # under policy_batch="all", and one pass of the actor for the next actions of both targets).
            replay_data = self.sample_policy_batch(batch_size)
            if self.use_sde:  # as SAC: a new gSDE noise matrix for each gradient step
                self.actor.reset_noise()
            shared = self.policy_batch == "all"
            safety_data = replay_data if shared else self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            with th.no_grad():
                next_actions, next_log_prob = self.actor.action_log_prob(safety_data.next_observations)

            # Safety critics (Eq. 2), then reward critics (SAC's soft target, Eq. 5).
            safety_loss = safety_critic_loss(
                self.safety_critic, self.safety_critic_target, safety_data, next_actions, self.gamma_c
            )
            optimizer_step(self.safety_critic.optimizer, safety_loss)
            if not shared:
                with th.no_grad():
                    next_actions, next_log_prob = self.actor.action_log_prob(replay_data.next_observations)
            with th.no_grad():
                alpha = self.alpha
            critic_loss = reward_critic_loss(
                self.critic, self.critic_target, replay_data, next_actions, next_log_prob, alpha, self.gamma
            )
            optimizer_step(self.critic.optimizer, critic_loss)

            # nu: one RMSProp step on Eq. 11 with the fixed epsilon, J_c = E[max Qc] on the batch.
            actions, log_prob = self.actor.action_log_prob(replay_data.observations)
            log_prob = log_prob.reshape(-1, 1)
            qr, qc = self.twin_q_values(replay_data.observations, actions)
            self.lagrangian.step(qc.amax(dim=1).mean(), self.epsilon.detach())

            # alpha: SAC v2's temperature loss towards the target entropy.
            ent_coef_loss = None
            if self.ent_coef_optimizer is not None:
                target_entropy = float(self.target_entropy)  # a float once _setup_entropy has run
                ent_coef_loss = -(self.log_ent_coef * (log_prob.detach() + target_entropy)).mean()
                optimizer_step(self.ent_coef_optimizer, ent_coef_loss)

            # The actor: alpha log pi - (min Qr - nu max Qc) (Eq. 11; RCPOSAC's penalised critic by penalised_value).
            actor_loss = (self.alpha.detach() * log_prob - self.penalised_value(qr, qc, self.nu.detach())).mean()
            # Gradients of the actor only: the critics' weight gradients of this loss are never used.
            parameters = [param for group in self.actor.optimizer.param_groups for param in group["params"]]
            for parameter, grad in zip(parameters, th.autograd.grad(actor_loss, parameters, allow_unused=True)):
                parameter.grad = grad
            self.actor.optimizer.step()

            step_logs = dict(safety_critic_loss=safety_loss, critic_loss=critic_loss, actor_loss=actor_loss)
            if ent_coef_loss is not None:
                step_logs["ent_coef_loss"] = ent_coef_loss
            for key, value in step_logs.items():
                logs.setdefault(key, []).append(value.detach())
            # Polyak update of both target critics.
            if gradient_step % self.target_update_interval == 0:
                self._polyak_update_targets()
        self._record_train_logs(gradient_steps, logs)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "ent_coef_optimizer"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        return state_dicts + (["ent_coef_optimizer"] if self.ent_coef_optimizer is not None else []), variables
