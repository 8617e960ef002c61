"""Policies of Meta SAC-Lag: SAC's actor and critics plus twin safety critics (see ``common/policies.py``)."""

from sb3_metasaclag.common.policies import MlpPolicy, MultiInputPolicy, SafeSACPolicy

__all__ = ["MlpPolicy", "MultiInputPolicy", "SafeSACPolicy"]
