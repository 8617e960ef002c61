from sb3_metasaclag.meta_sac_lag.meta_sac_lag import MetaSACLag
from sb3_metasaclag.meta_sac_lag.policies import MlpPolicy, MultiInputPolicy

__all__ = ["MetaSACLag", "MlpPolicy", "MultiInputPolicy"]
