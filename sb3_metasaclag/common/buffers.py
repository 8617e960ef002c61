"""The constraint-aware replay buffer of Meta SAC-Lag: main buffer ``D``, safety buffer ``D_s``, initial states ``D_0``.

Algorithm 1 of the paper stores a transition in ``D`` when it does not violate the constraint and in ``D_s`` when it
does (line 8-11), and keeps the observations returned by ``reset()`` in ``D_0`` (line 2 and every episode start).
The reward critic and the actor train on ``D`` only; the safety critic on ``D u D_s``; the ``alpha`` meta-objective
on ``D_0``. Every transition is stored exactly once.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer
from stable_baselines3.common.preprocessing import get_action_dim, get_obs_shape
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.vec_env import VecNormalize

from sb3_metasaclag.common.costs import get_costs

__all__ = ["ConstraintReplayBuffer", "ConstraintReplayBufferSamples", "InitialStateBuffer", "TransitionStore"]

Observation = np.ndarray | dict[str, np.ndarray]


class ConstraintReplayBufferSamples(NamedTuple):
    """A batch of transitions, SB3's ``ReplayBufferSamples`` plus the cost and the violation indicator ``c``."""

    observations: th.Tensor | TensorDict
    actions: th.Tensor
    next_observations: th.Tensor | TensorDict
    dones: th.Tensor
    rewards: th.Tensor
    costs: th.Tensor
    violations: th.Tensor


class _ObservationArray:
    """Circular storage for observations of a Box or (flat) Dict space: one row per stored item."""

    def __init__(self, capacity: int, observation_space: spaces.Space) -> None:
        shapes = get_obs_shape(observation_space)
        if isinstance(observation_space, spaces.Dict):
            assert isinstance(shapes, dict)
            self.data: np.ndarray | dict[str, np.ndarray] = {
                key: np.zeros((capacity, *shape), dtype=observation_space[key].dtype) for key, shape in shapes.items()
            }
        else:
            assert isinstance(shapes, tuple)
            self.data = np.zeros((capacity, *shapes), dtype=observation_space.dtype)

    def write(self, rows: np.ndarray, values: Observation, select: np.ndarray) -> None:
        if isinstance(self.data, dict):
            assert isinstance(values, dict)
            for key, array in self.data.items():
                array[rows] = np.asarray(values[key])[select].reshape(array[rows].shape)
        else:
            self.data[rows] = np.asarray(values)[select].reshape(self.data[rows].shape)

    def read(self, rows: np.ndarray) -> Observation:
        if isinstance(self.data, dict):
            return {key: array[rows] for key, array in self.data.items()}
        return self.data[rows]


class TransitionStore:
    """A circular array of transitions ``(s, a, r, cost, s', done)``, one row per transition (not per step of a VecEnv).

    :param capacity: Maximum number of transitions kept (the oldest are overwritten).
    """

    def __init__(self, capacity: int, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        if capacity < 1:
            raise ValueError(f"The buffer capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.observations = _ObservationArray(self.capacity, observation_space)
        self.next_observations = _ObservationArray(self.capacity, observation_space)
        # float32 like SB3's buffers: float64 action spaces (Safety-Gymnasium's) would give float64 tensors.
        self.actions = np.zeros((self.capacity, get_action_dim(action_space)), dtype=np.float32)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.costs = np.zeros(self.capacity, dtype=np.float32)
        self.dones = np.zeros(self.capacity, dtype=np.float32)
        self.pos = 0
        self.full = False

    def size(self) -> int:
        """Number of stored transitions."""
        return self.capacity if self.full else self.pos

    def add(
        self,
        select: np.ndarray,
        obs: Observation,
        next_obs: Observation,
        actions: np.ndarray,
        rewards: np.ndarray,
        costs: np.ndarray,
        dones: np.ndarray,
    ) -> None:
        """Store the transitions of the environments where ``select`` is True (arrays have one row per env)."""
        count = int(select.sum())
        if count == 0:
            return
        rows = (self.pos + np.arange(count)) % self.capacity
        self.observations.write(rows, obs, select)
        self.next_observations.write(rows, next_obs, select)
        self.actions[rows] = actions[select].reshape(count, -1)
        self.rewards[rows] = rewards[select]
        self.costs[rows] = costs[select]
        self.dones[rows] = dones[select]
        self.full = self.full or self.pos + count >= self.capacity
        self.pos = (self.pos + count) % self.capacity

    def sample_indices(self, count: int) -> np.ndarray:
        return np.random.randint(0, self.size(), size=count)


class InitialStateBuffer:
    """``D_0``: observations returned by ``reset()``, an empirical stand-in for the initial-state distribution ``rho_0``.

    :param capacity: Maximum number of observations kept (the oldest are overwritten).
    """

    def __init__(self, capacity: int, observation_space: spaces.Space) -> None:
        if capacity < 1:
            raise ValueError(f"The initial-state buffer capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.observations = _ObservationArray(self.capacity, observation_space)
        self.pos = 0
        self.full = False

    def size(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, obs: Observation, select: np.ndarray | None = None) -> None:
        """Store the reset observations of a VecEnv (one row per env), only those where ``select`` is True."""
        n_envs = len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)
        select = np.ones(n_envs, dtype=bool) if select is None else np.asarray(select, dtype=bool)
        count = int(select.sum())
        if count == 0:
            return
        rows = (self.pos + np.arange(count)) % self.capacity
        self.observations.write(rows, obs, select)
        self.full = self.full or self.pos + count >= self.capacity
        self.pos = (self.pos + count) % self.capacity


class ConstraintReplayBuffer(BaseBuffer):
    """Replay buffer that routes each transition by its violation indicator, plus the initial-state buffer.

    - ``main`` (``D``): transitions with ``cost <= violation_threshold``;
    - ``safety`` (``D_s``): transitions with ``cost > violation_threshold``;
    - ``initial_states`` (``D_0``): reset observations, fed by the algorithm (:meth:`add_initial_states`).

    ``add`` has SB3's signature and reads the costs from ``infos`` (``info["cost"]``, validated). Observations are stored
    unnormalized, and normalized at sampling time when a ``VecNormalize`` is given, as SB3 does. Timeouts
    (``TimeLimit.truncated``) are not terminal, as with SB3's ``handle_timeout_termination=True``.

    :param buffer_size: Capacity of ``D``.
    :param observation_space: Observation space (Box or flat Dict).
    :param action_space: Action space.
    :param device: PyTorch device of the sampled tensors.
    :param n_envs: Number of parallel environments.
    :param optimize_memory_usage: Not supported (must be False).
    :param violation_threshold: A transition violates the constraint when its cost exceeds this value.
    :param safety_buffer_size: Capacity of ``D_s`` (default: ``buffer_size``).
    :param initial_state_buffer_size: Capacity of ``D_0``.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        violation_threshold: float = 0.0,
        safety_buffer_size: int | None = None,
        initial_state_buffer_size: int = 10_000,
    ) -> None:
        super().__init__(buffer_size, observation_space, action_space, device, n_envs=n_envs)
        if optimize_memory_usage:
            raise ValueError("ConstraintReplayBuffer does not support optimize_memory_usage=True")
        self.violation_threshold = float(violation_threshold)
        self.main = TransitionStore(buffer_size, observation_space, action_space)
        if safety_buffer_size is not None and safety_buffer_size < 1:
            raise ValueError(f"safety_buffer_size must be >= 1 (or None: buffer_size), got {safety_buffer_size}")
        self.safety = TransitionStore(
            buffer_size if safety_buffer_size is None else safety_buffer_size, observation_space, action_space
        )
        self.initial_states = InitialStateBuffer(initial_state_buffer_size, observation_space)

    # SB3's BaseBuffer API -------------------------------------------------------------------------------------------
    def size(self) -> int:
        """Number of transitions in ``D`` and ``D_s`` together."""
        return self.main.size() + self.safety.size()

    def reset(self) -> None:
        self.main.pos, self.main.full = 0, False
        self.safety.pos, self.safety.full = 0, False
        self.initial_states.pos, self.initial_states.full = 0, False

    def add(
        self,
        obs: Observation,
        next_obs: Observation,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Store one step of a VecEnv: each env's transition goes to ``D`` or ``D_s`` according to its cost."""
        costs = get_costs(infos)
        reward = np.asarray(reward, dtype=np.float32).reshape(self.n_envs)
        if not np.all(np.isfinite(reward)):
            raise ValueError(f"Rewards must be finite, got {reward.tolist()}; nothing was stored.")
        timeouts = np.array([info.get("TimeLimit.truncated", False) for info in infos], dtype=bool)
        dones = np.asarray(done, dtype=np.float32).reshape(self.n_envs) * (1 - timeouts)
        action = np.asarray(action).reshape((self.n_envs, self.action_dim))
        violating = costs > self.violation_threshold
        self.main.add(~violating, obs, next_obs, action, reward, costs, dones)
        self.safety.add(violating, obs, next_obs, action, reward, costs, dones)

    def add_initial_states(self, obs: Observation, select: np.ndarray | None = None) -> None:
        """Store reset observations (one row per env) in ``D_0``."""
        self.initial_states.add(obs, select)

    # Sampling ------------------------------------------------------------------------------------------------------
    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ConstraintReplayBufferSamples:  # type: ignore[override]
        """A batch from ``D`` (non-violating transitions): for the reward critics and the actor."""
        if self.main.size() == 0:
            raise RuntimeError("The main buffer D is empty: no non-violating transition has been collected yet.")
        return self._get_samples_from(self.main, self.main.sample_indices(batch_size), env)

    def sample_all(self, batch_size: int, env: VecNormalize | None = None) -> ConstraintReplayBufferSamples:
        """A batch drawn uniformly from ``D u D_s`` (every transition): for the safety critics, and for the reward
        critics and the actor of an algorithm with ``main_batch="all"``."""
        n_main, n_safety = self.main.size(), self.safety.size()
        if n_main + n_safety == 0:
            raise RuntimeError("The replay buffer is empty.")
        indices = np.random.randint(0, n_main + n_safety, size=batch_size)
        from_main = indices < n_main
        main = self._numpy_batch(self.main, indices[from_main])
        safety = self._numpy_batch(self.safety, indices[~from_main] - n_main)
        merged = tuple(_concatenate(a, b) for a, b in zip(main, safety))
        return self._to_samples(merged, env)

    def sample_balanced(self, batch_size: int, env: VecNormalize | None = None) -> ConstraintReplayBufferSamples:
        """A batch drawn half from ``D`` and half from ``D_s`` (all from ``D`` while ``D_s`` is empty).

        Used by ``MetaSACLag(epsilon_batch="mixed")`` for the ``epsilon`` objective.
        """
        if self.main.size() == 0:
            raise RuntimeError("The main buffer D is empty: no non-violating transition has been collected yet.")
        n_violating = batch_size // 2 if self.safety.size() > 0 else 0
        main = self._numpy_batch(self.main, self.main.sample_indices(batch_size - n_violating))
        safety = self._numpy_batch(self.safety, self.safety.sample_indices(n_violating))
        return self._to_samples(tuple(_concatenate(a, b) for a, b in zip(main, safety)), env)

    def sample_initial_states(self, batch_size: int, env: VecNormalize | None = None) -> th.Tensor | TensorDict:
        """A batch of observations from ``D_0``."""
        if self.initial_states.size() == 0:
            raise RuntimeError("The initial-state buffer D_0 is empty.")
        rows = np.random.randint(0, self.initial_states.size(), size=batch_size)
        return self._observation_tensor(self.initial_states.observations.read(rows), env)

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> ConstraintReplayBufferSamples:
        return self._get_samples_from(self.main, batch_inds, env)

    def _get_samples_from(
        self, store: TransitionStore, rows: np.ndarray, env: VecNormalize | None
    ) -> ConstraintReplayBufferSamples:
        return self._to_samples(self._numpy_batch(store, rows), env)

    @staticmethod
    def _numpy_batch(store: TransitionStore, rows: np.ndarray) -> tuple[Any, ...]:
        return (
            store.observations.read(rows),
            store.actions[rows],
            store.next_observations.read(rows),
            store.dones[rows],
            store.rewards[rows],
            store.costs[rows],
        )

    def _observation_tensor(self, obs: Observation, env: VecNormalize | None) -> th.Tensor | TensorDict:
        obs = self._normalize_obs(obs, env)  # type: ignore[arg-type]
        if isinstance(obs, dict):
            return {key: self.to_torch(value) for key, value in obs.items()}
        return self.to_torch(obs)

    def _to_samples(self, batch: tuple[Any, ...], env: VecNormalize | None) -> ConstraintReplayBufferSamples:
        obs, actions, next_obs, dones, rewards, costs = batch
        violations = (costs > self.violation_threshold).astype(np.float32)
        rewards = self._normalize_reward(rewards.reshape(-1, 1), env)
        return ConstraintReplayBufferSamples(
            observations=self._observation_tensor(obs, env),
            actions=self.to_torch(actions),
            next_observations=self._observation_tensor(next_obs, env),
            dones=self.to_torch(dones.reshape(-1, 1)),
            rewards=self.to_torch(rewards.astype(np.float32)),
            costs=self.to_torch(costs.reshape(-1, 1)),
            violations=self.to_torch(violations.reshape(-1, 1)),
        )


def _concatenate(first: Any, second: Any) -> Any:
    if isinstance(first, dict):
        return {key: np.concatenate([first[key], second[key]]) for key in first}
    return np.concatenate([first, second])
