"""Policies with safety critics: SAC's actor and twin reward critics, plus twin safety critics ``Qc1, Qc2``."""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.sac.policies import SACPolicy
from torch import nn

__all__ = ["CnnPolicy", "MlpPolicy", "MultiInputPolicy", "SafeSACPolicy"]


class SafeSACPolicy(SACPolicy):
    """SAC's policy (squashed Gaussian actor, twin reward critics and their targets) with twin safety critics.

    The safety critics estimate ``Qc(s, a)``, the discounted probability of a future violation (paper Eq. 2). They are
    built exactly like the reward critics (same architecture, features extractor and optimizer class) and have their
    own Polyak targets. Every argument of SB3's ``SACPolicy`` is accepted (without ``optimizer_kwargs``, Adam runs as
    torch's fused implementation: the same update in fewer kernels), plus:

    :param actor_optimizer_class: Optimizer of the actor (default: ``optimizer_class``). Meta SAC-Lag uses
        ``torch.optim.RMSprop`` because it differentiates through the actor's update step (paper Appendix B).
    :param actor_optimizer_kwargs: Keyword arguments of the actor optimizer (default: ``optimizer_kwargs``).
    """

    safety_critic: ContinuousCritic
    safety_critic_target: ContinuousCritic

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        use_sde: bool = False,
        log_std_init: float = -3,
        use_expln: bool = False,
        clip_mean: float = 2.0,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        share_features_extractor: bool = False,
        actor_optimizer_class: type[th.optim.Optimizer] | None = None,
        actor_optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if optimizer_kwargs is None and optimizer_class in (th.optim.Adam, th.optim.AdamW):
            # Torch's fused Adam: one kernel per step for all of a network's weights (CPU and GPU), the same update.
            optimizer_kwargs = {"fused": True}
        self.actor_optimizer_class = actor_optimizer_class or optimizer_class
        self.actor_optimizer_kwargs = actor_optimizer_kwargs if actor_optimizer_kwargs is not None else optimizer_kwargs
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            use_sde=use_sde,
            log_std_init=log_std_init,
            use_expln=use_expln,
            clip_mean=clip_mean,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            n_critics=n_critics,
            share_features_extractor=share_features_extractor,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        self.actor.optimizer = self.actor_optimizer_class(
            self.actor.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **(self.actor_optimizer_kwargs or {}),
        )
        if self.share_features_extractor:
            self.safety_critic = self.make_critic(features_extractor=self.actor.features_extractor)
            parameters = [param for name, param in self.safety_critic.named_parameters() if "features_extractor" not in name]
        else:
            self.safety_critic = self.make_critic(features_extractor=None)
            parameters = list(self.safety_critic.parameters())
        self.safety_critic_target = self.make_critic(features_extractor=None)
        self.safety_critic_target.load_state_dict(self.safety_critic.state_dict())
        self.safety_critic.optimizer = self.optimizer_class(
            parameters,
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )
        self.safety_critic_target.set_training_mode(False)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(actor_optimizer_class=self.actor_optimizer_class, actor_optimizer_kwargs=self.actor_optimizer_kwargs)
        return data

    def set_training_mode(self, mode: bool) -> None:
        super().set_training_mode(mode)
        self.safety_critic.set_training_mode(mode)
        self.training = mode


MlpPolicy = SafeSACPolicy


class MultiInputPolicy(SafeSACPolicy):
    """:class:`SafeSACPolicy` for Dict observation spaces (SB3's ``CombinedExtractor`` by default); the other arguments
    are :class:`SafeSACPolicy`'s, by keyword."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space, action_space, lr_schedule, features_extractor_class=features_extractor_class, **kwargs
        )


class CnnPolicy(SafeSACPolicy):
    """:class:`SafeSACPolicy` for image observations (SB3's ``NatureCNN`` by default, as SAC's ``CnnPolicy``); the
    other arguments are :class:`SafeSACPolicy`'s, by keyword."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space, action_space, lr_schedule, features_extractor_class=features_extractor_class, **kwargs
        )
