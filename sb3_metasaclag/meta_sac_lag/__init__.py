"""Deprecated: renamed :mod:`sb3_metasaclag.metasaclag` (the RL Zoo name); kept for one release."""

from sb3_metasaclag.common.deprecation import alias_renamed_package

_package = alias_renamed_package(
    __name__,
    "sb3_metasaclag.metasaclag",
    {"meta_sac_lag": "metasaclag", "policies": "policies", "reference": "reference"},
)
MetaSACLag = _package.MetaSACLag
MlpPolicy = _package.MlpPolicy
MultiInputPolicy = _package.MultiInputPolicy

__all__ = ["MetaSACLag", "MlpPolicy", "MultiInputPolicy"]
