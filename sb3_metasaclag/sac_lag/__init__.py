"""Deprecated: renamed :mod:`sb3_metasaclag.saclag` (the RL Zoo name); kept for one release."""

from sb3_metasaclag.common.deprecation import alias_renamed_package

_package = alias_renamed_package(__name__, "sb3_metasaclag.saclag", {"sac_lag": "saclag"})
SACLag = _package.SACLag
MlpPolicy = _package.MlpPolicy
MultiInputPolicy = _package.MultiInputPolicy

__all__ = ["MlpPolicy", "MultiInputPolicy", "SACLag"]
