"""Grids of training runs on any number of processes or machines, and the paper's figures from them.

    python -m sb3_metasaclag.experiments run --algos metasaclag saclag sac --envs SafeNavigation2DSoft-v0 \
        --seeds 0 1 2 --steps 20000 --storage sqlite:///runs/exp.db --study nav --workers 2 --log-dir runs/exp
    python -m sb3_metasaclag.experiments run --grid experiments/outer_loop_bandits.yml \
        --storage sqlite:///runs/ol.db --study ol
    python -m sb3_metasaclag.experiments plot --storage sqlite:///runs/exp.db --study nav --out runs/exp/figures

Each run is configured as ``python -m rl_zoo3.train`` configures it and logs in RL Zoo's layout; the grid lives in an
Optuna study, so every worker (local processes, or the same command on other machines sharing a PostgreSQL or MySQL
storage) takes the next run nobody has done. See docs/experiments.md.
"""

from sb3_metasaclag.experiments.grid import (
    OUTCOME_KEYS,
    Contender,
    GridCell,
    completed_runs,
    grid_cells,
    grid_file_cells,
    open_storage,
    run_cell,
    run_grid,
    validate_grid,
)
from sb3_metasaclag.experiments.plots import plot_runs, summary_table

__all__ = [
    "OUTCOME_KEYS",
    "Contender",
    "GridCell",
    "completed_runs",
    "grid_cells",
    "grid_file_cells",
    "open_storage",
    "plot_runs",
    "run_cell",
    "run_grid",
    "summary_table",
    "validate_grid",
]
