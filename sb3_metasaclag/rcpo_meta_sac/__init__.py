from sb3_metasaclag.common.policies import MlpPolicy, MultiInputPolicy
from sb3_metasaclag.rcpo_meta_sac.rcpo_meta_sac import RCPOMetaSAC

__all__ = ["MlpPolicy", "MultiInputPolicy", "RCPOMetaSAC"]
