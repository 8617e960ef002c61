"""RCPO-SACv2: SACLag whose actor ascends RCPO's penalised critic."""

from __future__ import annotations

from sb3_metasaclag.common.rcpo import rcpo_penalised_value
from sb3_metasaclag.saclag.saclag import SACLag


class RCPOSAC(SACLag):
    """
    RCPO-SACv2 (paper Sec. 5.1; Tessler et al. 2018, https://arxiv.org/abs/1805.11074): as :class:`SACLag`, but the
    actor ascends the penalised critic ``min_j (Qr_j - nu * Qc_j)`` instead of ``min Qr - nu * max Qc``; ``nu`` is
    updated by Eq. 11 with a fixed ``epsilon`` and ``alpha`` follows SAC v2. Same arguments as :class:`SACLag`.
    """

    penalised_value = staticmethod(rcpo_penalised_value)  # type: ignore[assignment]


__all__ = ["RCPOSAC"]
