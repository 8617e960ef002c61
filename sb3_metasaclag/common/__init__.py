"""Pieces shared by the algorithms of sb3_metasaclag: cost conventions, wrappers, buffers, policies, optimizers."""
