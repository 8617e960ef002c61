"""The constraint-aware replay buffer of Meta SAC-Lag: SB3's replay buffer with costs, ``D_s`` and ``D_0`` beside it.

Algorithm 1 of the paper stores a transition in ``D`` when it does not violate the constraint and in ``D_s`` when it
does (lines 8-11), while its Appendix B says that ``D`` stores all the transitions; it keeps the observations returned
by ``reset()`` in ``D_0`` (line 2 and every episode start). Here SB3's store holds every transition with its cost (so
both readings of ``D`` are a sampling choice, see ``policy_batch``), ``D_s`` keeps the violating ones for longer, and
``D_0`` the reset observations.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.preprocessing import get_action_dim, get_obs_shape
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.vec_env import VecNormalize

from sb3_metasaclag.common.costs import get_costs, is_violation

__all__ = [
    "ConstraintDictReplayBuffer",
    "ConstraintReplayBuffer",
    "ConstraintReplayBufferSamples",
    "InitialStateBuffer",
    "TransitionStore",
    "constraint_buffer_class",
]

Observation = np.ndarray | dict[str, np.ndarray]


class ConstraintReplayBufferSamples(NamedTuple):
    """A batch of transitions: SB3's ``ReplayBufferSamples`` (same fields, same order; ``discounts`` is None: one-step
    returns) plus the cost and the violation indicator ``c``."""

    observations: th.Tensor | TensorDict
    actions: th.Tensor
    next_observations: th.Tensor | TensorDict
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor | None
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
        self.stamps = np.zeros(self.capacity, dtype=np.int64)  # when each transition was added (a step count)
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
        stamp: int = 0,
    ) -> None:
        """Store the transitions of the environments where ``select`` is True (arrays have one row per env), marked with
        ``stamp`` (the step at which they were collected)."""
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
        self.stamps[rows] = stamp
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


class ConstraintReplayBuffer(ReplayBuffer):
    """SB3's ``ReplayBuffer`` with the costs of its transitions, plus the safety buffer ``D_s`` and the initial states ``D_0``.

    - The SB3 store (``observations``, ``actions``, ``rewards``, ``dones``, ``timeouts``, ``next_observations``, one row
      per step of the VecEnv, SB3's layout) holds every transition, as Appendix B of the paper describes ``D``, and
      ``costs`` beside it; ``sample`` has SB3's signature, so SB3's tools read and sample it as they would SAC's buffer.
    - ``safety`` (``D_s``): the violating transitions (``cost > violation_threshold``) with a capacity of their own, so
      that a violation outlives its row in the store (rare events are what the safety critic must not forget).
    - ``initial_states`` (``D_0``): reset observations, fed by the algorithm (:meth:`add_initial_states`).

    Batches: :meth:`sample` draws uniformly from every transition kept (the store, and the violations of ``D_s`` that
    the store has already overwritten); :meth:`sample_non_violating` from the non-violating transitions of the store
    (``D`` as Algorithm 1, lines 7-10, routes it).

    ``add`` has SB3's signature and reads the costs from ``infos`` (``info["cost"]``, validated before anything is
    stored). Observations are stored unnormalized, and normalized at sampling time when a ``VecNormalize`` is given, as
    SB3 does. Timeouts (``TimeLimit.truncated``) are not terminal, as with SB3's ``handle_timeout_termination=True``.
    Observations of a ``Dict`` space need :class:`ConstraintDictReplayBuffer` (as SAC needs ``DictReplayBuffer``).

    :param buffer_size: Capacity of the store, in transitions (divided among the envs, as in SB3).
    :param observation_space: Observation space.
    :param action_space: Action space.
    :param device: PyTorch device of the sampled tensors.
    :param n_envs: Number of parallel environments.
    :param optimize_memory_usage: Not supported (must be False).
    :param handle_timeout_termination: Must be True (a timeout is not a terminal state).
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
        handle_timeout_termination: bool = True,
        violation_threshold: float = 0.0,
        safety_buffer_size: int | None = None,
        initial_state_buffer_size: int = 10_000,
    ) -> None:
        if optimize_memory_usage:
            raise ValueError(f"{type(self).__name__} does not support optimize_memory_usage=True")
        if not handle_timeout_termination:
            raise ValueError(f"{type(self).__name__} treats timeouts as non-terminal: handle_timeout_termination=True")
        if buffer_size < 1:
            raise ValueError(f"The buffer capacity must be >= 1, got {buffer_size}")
        if safety_buffer_size is not None and safety_buffer_size < 1:
            raise ValueError(f"safety_buffer_size must be >= 1 (or None: buffer_size), got {safety_buffer_size}")
        self._check_observation_space(observation_space)
        super().__init__(buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.violation_threshold = float(violation_threshold)
        self.costs = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        self.safety = TransitionStore(
            buffer_size if safety_buffer_size is None else safety_buffer_size, observation_space, action_space
        )
        self.initial_states = InitialStateBuffer(initial_state_buffer_size, observation_space)
        self.n_steps_added = 0  # calls of add(): the store row of step t is overwritten at step t + buffer_size
        self.n_violating = 0  # violating transitions in the store

    @staticmethod
    def _check_observation_space(observation_space: spaces.Space) -> None:
        if isinstance(observation_space, spaces.Dict):
            raise ValueError("Observations of a Dict space need ConstraintDictReplayBuffer (like SB3's DictReplayBuffer)")

    # SB3's ReplayBuffer API ----------------------------------------------------------------------------------------
    def reset(self) -> None:
        super().reset()
        self.safety.pos, self.safety.full = 0, False
        self.initial_states.pos, self.initial_states.full = 0, False
        self.n_steps_added, self.n_violating = 0, 0

    def add(  # type: ignore[override]
        self,
        obs: Observation,
        next_obs: Observation,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Store one step of a VecEnv, with its costs; violating transitions are also kept in ``D_s``."""
        costs = get_costs(infos)  # validates before anything is stored
        reward = np.asarray(reward, dtype=np.float32).reshape(self.n_envs)
        if not np.all(np.isfinite(reward)):
            raise ValueError(f"Rewards must be finite, got {reward.tolist()}; nothing was stored.")
        violating = is_violation(costs, self.violation_threshold)
        timeouts = np.array([info.get("TimeLimit.truncated", False) for info in infos], dtype=bool)
        dones = np.asarray(done, dtype=np.float32).reshape(self.n_envs) * (1 - timeouts)
        action = np.asarray(action).reshape((self.n_envs, self.action_dim))
        row, overwriting = self.pos, self.full
        super().add(obs, next_obs, action, reward, done, infos)  # type: ignore[arg-type]
        # SB3's row is in: its cost beside it, the count of violations in the store, and D_s.
        if overwriting:  # the row just overwritten has left the store
            self.n_violating -= int(np.count_nonzero(is_violation(self.costs[row], self.violation_threshold)))
        self.costs[row] = costs
        self.n_violating += int(np.count_nonzero(violating))
        self.safety.add(violating, obs, next_obs, action, reward, costs, dones, stamp=self.n_steps_added)
        self.n_steps_added += 1

    def add_initial_states(self, obs: Observation, select: np.ndarray | None = None) -> None:
        """Store reset observations (one row per env) in ``D_0``."""
        self.initial_states.add(obs, select)

    # Sizes ---------------------------------------------------------------------------------------------------------
    def n_transitions(self) -> int:
        """Transitions in the store (steps times envs)."""
        return self.size() * self.n_envs

    def non_violating_size(self) -> int:
        """Non-violating transitions in the store: ``D`` of Algorithm 1."""
        return self.n_transitions() - self.n_violating

    def _evicted_violations(self) -> np.ndarray:
        """Rows of ``D_s`` whose transition the store has overwritten, oldest first."""
        n_safety = self.safety.size()
        if n_safety == 0 or self.n_steps_added <= self.buffer_size:
            return np.zeros(0, dtype=np.int64)
        start = self.safety.pos if self.safety.full else 0
        rows = (start + np.arange(n_safety)) % self.safety.capacity  # oldest first: stamps ascend
        count = int(np.searchsorted(self.safety.stamps[rows], self.n_steps_added - self.buffer_size, side="left"))
        return rows[:count]

    # Sampling ------------------------------------------------------------------------------------------------------
    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ConstraintReplayBufferSamples:  # type: ignore[override]
        """A batch drawn uniformly from every transition kept: the store, and the violations of ``D_s`` it has
        overwritten (the paper's ``D u D_s``). Batches of the safety critics, and of the reward critics and the actor
        under ``policy_batch="all"``."""
        if self.size() == 0:
            raise RuntimeError("The replay buffer is empty.")
        evicted = self._evicted_violations()
        if len(evicted) == 0:
            return super().sample(batch_size, env)  # type: ignore[return-value]
        n_store = self.n_transitions()
        from_safety = np.random.randint(0, n_store + len(evicted), size=batch_size) >= n_store
        store = self._store_batch(*self._store_indices(int(np.count_nonzero(~from_safety))))
        safety = self._store_rows(self.safety, evicted[np.random.randint(0, len(evicted), size=int(from_safety.sum()))])
        return self._to_samples(tuple(_concatenate(a, b) for a, b in zip(store, safety)), env)

    def sample_non_violating(self, batch_size: int, env: VecNormalize | None = None) -> ConstraintReplayBufferSamples:
        """A batch drawn uniformly from the non-violating transitions of the store (``D`` of Algorithm 1)."""
        return self._to_samples(self._non_violating_batch(batch_size), env)

    def sample_initial_states(self, batch_size: int, env: VecNormalize | None = None) -> th.Tensor | TensorDict:
        """A batch of observations from ``D_0``."""
        if self.initial_states.size() == 0:
            raise RuntimeError("The initial-state buffer D_0 is empty.")
        rows = np.random.randint(0, self.initial_states.size(), size=batch_size)
        return self._observation_tensor(self.initial_states.observations.read(rows), env)

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> ConstraintReplayBufferSamples:
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        return self._to_samples(self._store_batch(batch_inds, env_indices), env)

    def _store_indices(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        upper = self.buffer_size if self.full else self.pos
        return np.random.randint(0, upper, size=count), np.random.randint(0, self.n_envs, size=count)

    def _non_violating_batch(self, batch_size: int) -> tuple[Any, ...]:
        if self.non_violating_size() == 0:
            raise RuntimeError("No non-violating transition has been collected yet (D of Algorithm 1 is empty).")
        steps, envs = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        while len(steps) < batch_size:  # rejection: accepted draws are uniform over the non-violating transitions
            candidates = self._store_indices(2 * batch_size)
            keep = ~is_violation(self.costs[candidates], self.violation_threshold)
            steps, envs = np.concatenate([steps, candidates[0][keep]]), np.concatenate([envs, candidates[1][keep]])
        return self._store_batch(steps[:batch_size], envs[:batch_size])

    def _store_batch(self, steps: np.ndarray, envs: np.ndarray) -> tuple[Any, ...]:
        """``(obs, actions, next_obs, dones, rewards, costs)`` of store rows, numpy, unnormalized; a timeout is not done."""
        return (
            _rows(self.observations, steps, envs),
            self.actions[steps, envs],
            _rows(self.next_observations, steps, envs),
            self.dones[steps, envs] * (1 - self.timeouts[steps, envs]),
            self.rewards[steps, envs],
            self.costs[steps, envs],
        )

    @staticmethod
    def _store_rows(store: TransitionStore, rows: np.ndarray) -> tuple[Any, ...]:
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
        violations = is_violation(costs, self.violation_threshold).astype(np.float32)
        rewards = self._normalize_reward(rewards.reshape(-1, 1), env)
        return ConstraintReplayBufferSamples(
            observations=self._observation_tensor(obs, env),
            actions=self.to_torch(actions),
            next_observations=self._observation_tensor(next_obs, env),
            dones=self.to_torch(dones.reshape(-1, 1).astype(np.float32)),
            rewards=self.to_torch(rewards.astype(np.float32)),
            discounts=None,
            costs=self.to_torch(costs.reshape(-1, 1)),
            violations=self.to_torch(violations.reshape(-1, 1)),
        )


class ConstraintDictReplayBuffer(ConstraintReplayBuffer, DictReplayBuffer):  # type: ignore[misc]
    """:class:`ConstraintReplayBuffer` for observations of a ``Dict`` space: SB3's ``DictReplayBuffer`` with costs,
    ``D_s`` and ``D_0`` (the algorithms choose it for ``MultiInputPolicy``, as SAC chooses ``DictReplayBuffer``)."""

    @staticmethod
    def _check_observation_space(observation_space: spaces.Space) -> None:
        if not isinstance(observation_space, spaces.Dict):
            raise ValueError("ConstraintDictReplayBuffer needs a Dict observation space: use ConstraintReplayBuffer")


def constraint_buffer_class(observation_space: spaces.Space) -> type[ConstraintReplayBuffer]:
    """The constraint-aware buffer for an observation space, as SB3 picks ``ReplayBuffer`` or ``DictReplayBuffer``."""
    return ConstraintDictReplayBuffer if isinstance(observation_space, spaces.Dict) else ConstraintReplayBuffer


def _rows(store: Any, steps: np.ndarray, envs: np.ndarray) -> Any:
    """Rows ``(steps, envs)`` of an SB3 store array, or of each array of a Dict store."""
    if isinstance(store, dict):
        return {key: array[steps, envs] for key, array in store.items()}
    return store[steps, envs]


def _concatenate(first: Any, second: Any) -> Any:
    if isinstance(first, dict):
        return {key: np.concatenate([first[key], second[key]]) for key in first}
    return np.concatenate([first, second])
