from sb3_metasaclag.common.policies import MlpPolicy, MultiInputPolicy
from sb3_metasaclag.sac_lag.sac_lag import SACLag

__all__ = ["MlpPolicy", "MultiInputPolicy", "SACLag"]
