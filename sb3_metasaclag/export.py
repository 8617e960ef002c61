"""Export a trained policy for deployment: its deterministic action as an ONNX or TorchScript model.

    from sb3_metasaclag import export_policy
    export_policy(model, "policy.onnx")                         # onnxruntime.InferenceSession("policy.onnx")
    export_policy(model, "policy.pt", format="torchscript")     # torch.jit.load("policy.pt")

The exported model maps a batch of observations (float32, shape ``(batch, *observation_shape)``) to the actions
``model.predict(observations, deterministic=True)`` returns: the actor's mean action, squashed, scaled to the
environment's action bounds and clipped to them. When the model was trained under ``VecNormalize``, its observation
normalisation (running mean and variance, clipping) is built in, so the exported model takes raw observations.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from torch import nn

__all__ = ["DeterministicPolicy", "export_policy"]

FORMATS = ("onnx", "torchscript")


class DeterministicPolicy(nn.Module):
    """``observation -> action`` of an SB3 SAC-family policy, as ``predict(..., deterministic=True)`` computes it.

    :param model: A trained model of this package (or stock SB3 ``SAC``) with a Box observation and action space.
    """

    low: th.Tensor
    high: th.Tensor
    mean: th.Tensor
    std: th.Tensor

    def __init__(self, model: Any) -> None:
        super().__init__()
        observation_space, action_space = model.observation_space, model.action_space
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(
                "export_policy supports flat Box observations (vectors), got "
                f"{observation_space}; flatten Dict or image observations with a wrapper before training to export"
            )
        if not isinstance(action_space, spaces.Box):
            raise ValueError(f"export_policy needs a Box action space, got {action_space}")
        # A fresh actor with the trained weights (a deep copy would also copy the optimizer the actor carries).
        actor = model.policy.make_actor(features_extractor=None)
        actor.load_state_dict(model.policy.actor.state_dict())
        self.actor = actor.to("cpu").eval()
        self.register_buffer("low", th.as_tensor(action_space.low, dtype=th.float32))
        self.register_buffer("high", th.as_tensor(action_space.high, dtype=th.float32))
        self.squash = bool(model.policy.squash_output)
        normalizer = model.get_vec_normalize_env()
        self.normalize = normalizer is not None and bool(normalizer.norm_obs)
        if self.normalize:
            assert normalizer is not None
            self.register_buffer("mean", th.as_tensor(normalizer.obs_rms.mean, dtype=th.float32))
            self.register_buffer("std", th.as_tensor(np.sqrt(normalizer.obs_rms.var + normalizer.epsilon), dtype=th.float32))
            self.clip_obs = float(normalizer.clip_obs)

    def forward(self, observation: th.Tensor) -> th.Tensor:
        observation = observation.float()
        if self.normalize:
            observation = th.clamp((observation - self.mean) / self.std, -self.clip_obs, self.clip_obs)
        action = self.actor(observation, deterministic=True)
        if self.squash:
            action = self.low + 0.5 * (action + 1.0) * (self.high - self.low)
        return th.clamp(action, self.low, self.high)


def export_policy(model: Any, path: str | os.PathLike, format: str = "onnx", opset_version: int = 17) -> str:
    """Write the deterministic policy of ``model`` to ``path`` (see the module docstring); return the path.

    :param format: ``"onnx"`` (needs the ``onnx`` package; run it with ``onnxruntime``: ``pip install
        'sb3-metasaclag[export]'``) or ``"torchscript"`` (``torch.jit.load``).
    :param opset_version: ONNX opset.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    module = DeterministicPolicy(model)
    example = th.zeros((1, *model.observation_space.shape), dtype=th.float32)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    validate = th.distributions.Distribution._validate_args
    th.distributions.Distribution.set_default_validate_args(False)  # value checks would be traced as constants
    try:
        with th.no_grad(), warnings.catch_warnings():
            # torch 2.13 marks torch.jit and the TorchScript-based ONNX exporter deprecated; both work here, while its
            # default dynamo ONNX exporter needs onnxscript and fails on SB3's actor.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            if format == "torchscript":
                th.jit.trace(module, example).save(path)
                return path
            try:
                import onnx  # noqa: F401  (torch's exporter needs it)
            except ImportError as error:
                raise ImportError("ONNX export needs the onnx package: pip install 'sb3-metasaclag[export]'") from error
            th.onnx.export(
                module,
                (example,),
                path,
                dynamo=False,
                input_names=["observation"],
                output_names=["action"],
                dynamic_axes={"observation": {0: "batch"}, "action": {0: "batch"}},
                opset_version=opset_version,
            )
    finally:
        th.distributions.Distribution.set_default_validate_args(validate)
    return path
