"""Deprecated: renamed :mod:`sb3_metasaclag.rcpo_metasac` (the RL Zoo name); kept for one release."""

from sb3_metasaclag.common.deprecation import alias_renamed_package

_package = alias_renamed_package(__name__, "sb3_metasaclag.rcpo_metasac", {"rcpo_meta_sac": "rcpo_metasac"})
RCPOMetaSAC = _package.RCPOMetaSAC
MlpPolicy = _package.MlpPolicy
MultiInputPolicy = _package.MultiInputPolicy

__all__ = ["MlpPolicy", "MultiInputPolicy", "RCPOMetaSAC"]
