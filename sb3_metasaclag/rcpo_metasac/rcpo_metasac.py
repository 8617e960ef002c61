"""RCPO-MetaSAC: RCPO's penalised critic with Meta-SAC's meta-gradient temperature."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch as th
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.type_aliases import GymEnv, Schedule

from sb3_metasaclag.common.policies import SafeSACPolicy
from sb3_metasaclag.common.rcpo import rcpo_penalised_value
from sb3_metasaclag.metasaclag.metasaclag import MetaSACLag


class RCPOMetaSAC(MetaSACLag):
    """
    RCPO-MetaSAC (paper Sec. 5.1): the actor ascends RCPO's penalised critic ``min_j (Qr_j - nu * Qc_j)``
    (Tessler et al. 2018), ``nu`` follows Eq. 11 with a fixed ``epsilon``, and ``alpha`` is tuned as in Meta-SAC
    (Wang & Ni 2020, https://arxiv.org/abs/2007.01932): ascent on ``E_{s0}[Q(s0, deterministic pi_phi'(s0))]`` through
    one differentiable RMSProp step of the actor, with ``Q`` the penalised critic.

    It is :class:`MetaSACLag` with the penalised critic and without the outer ``epsilon`` step: the same arguments
    (documented there), except ``epsilon`` (fixed; default 0.5, the middle of Table 1's values), ``outer_rule``
    (default ``"paper"``: the baseline as the paper ran it; ``"averaged"`` too, not ``"survival"``, which does not
    meta-learn ``alpha``), and no ``learn_epsilon`` / ``epsilon_batch`` (the rule's ``epsilon`` settings have no
    effect).
    """

    penalised_value = staticmethod(rcpo_penalised_value)  # type: ignore[assignment]

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
        nu_optimizer: Literal["rmsprop", "sgd"] = "rmsprop",
        epsilon: float = 0.5,
        epsilon_max: float = 1.0,
        policy_batch: Literal["non_violating", "all"] = "all",
        alpha: float = 1.0,
        ent_coef: str | float | None = None,
        target_entropy: str | float = "auto",
        learn_alpha: bool = True,
        outer_rule: Literal["averaged", "paper"] = "paper",
        outer_rule_kwargs: dict[str, Any] | None = None,
        nu_max: float = math.inf,
        meta_gradient_method: Literal["closed_form", "autograd"] = "closed_form",
        meta_gradient_every: int = 1,
        violation_threshold: float = 0.0,
        n_initial_states: int = 32,
        initial_state_batch_size: int = 256,
        initial_state_buffer_size: int = 10_000,
        rmsprop_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        replay_buffer_class: type | None = None,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
        optimize_memory_usage: bool = False,
        main_batch: str | None = None,
        _init_setup_model: bool = True,
    ) -> None:
        # The baseline as the paper ran it: Meta-SAC's temperature step after every gradient step (outer_rule="paper").
        if outer_rule == "survival":
            raise ValueError("RCPOMetaSAC learns alpha by meta-gradient: outer_rule must be 'paper' or 'averaged'")
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
            nu_optimizer=nu_optimizer,
            epsilon=epsilon,
            epsilon_max=epsilon_max,
            policy_batch=policy_batch,
            alpha=alpha,
            ent_coef=ent_coef,
            target_entropy=target_entropy,
            learn_alpha=learn_alpha,
            outer_rule=outer_rule,
            outer_rule_kwargs=outer_rule_kwargs,
            nu_max=nu_max,
            meta_gradient_method=meta_gradient_method,
            meta_gradient_every=meta_gradient_every,
            violation_threshold=violation_threshold,
            n_initial_states=n_initial_states,
            initial_state_batch_size=initial_state_batch_size,
            initial_state_buffer_size=initial_state_buffer_size,
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
            main_batch=main_batch,
            _init_setup_model=_init_setup_model,
            learn_epsilon=False,
        )

    def alpha_objective_value(
        self, params: Sequence[th.Tensor], nu: th.Tensor, epsilon: th.Tensor | float, initial_observations: Any
    ) -> th.Tensor:
        """Meta-SAC's objective: the (penalised) critic at initial states, deterministic action of ``phi'``."""
        actions = self.actor_with(params, initial_observations, deterministic=True)
        return self.penalised_value(*self.twin_q_values(initial_observations, actions), nu.detach()).mean()
