from sb3_metasaclag.common.policies import MlpPolicy, MultiInputPolicy
from sb3_metasaclag.saclag.saclag import SACLag

__all__ = ["MlpPolicy", "MultiInputPolicy", "SACLag"]
