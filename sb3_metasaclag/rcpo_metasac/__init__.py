from sb3_metasaclag.common.policies import MlpPolicy, MultiInputPolicy
from sb3_metasaclag.rcpo_metasac.rcpo_metasac import RCPOMetaSAC

__all__ = ["MlpPolicy", "MultiInputPolicy", "RCPOMetaSAC"]
