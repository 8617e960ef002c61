"""Reward Constrained Policy Optimization's penalised critic (Tessler et al. 2018), shared by the RCPO baselines."""

import torch as th


def rcpo_penalised_value(qr: th.Tensor, qc: th.Tensor, nu: th.Tensor) -> th.Tensor:
    """The penalised critic ``Q = Qr - nu * Qc`` per twin, then SAC's ``min`` over the twins: shape ``(batch, 1)``.

    :param qr: Reward critic values, one column per twin.
    :param qc: Safety critic values, one column per twin.
    :param nu: The Lagrange multiplier.
    """
    return (qr - nu * qc).amin(dim=1, keepdim=True)
