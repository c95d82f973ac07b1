"""Hyperparameter search the CS231n way: random search in log space, coarse then fine, on dask.distributed.

    from fastnn.data_utils import load_digits
    from fastnn.tune import build_fc_net, choice, coarse_to_fine, loguniform, random_search

    if __name__ == "__main__":  # in a script: dask starts its workers as new processes, which import it
        space = {"learning_rate": loguniform(1e-4, 1e-1), "reg": loguniform(1e-6, 1e-1),
                 "hidden_size": choice([32, 64])}
        result = random_search(build_fc_net, load_digits(), space, n_trials=20,
                               solver_kwargs={"update_rule": "adam", "num_epochs": 5})
        print(result.table())
        result.save("tune-out")      # results.json, results.csv, scatter.png, best.npz

Every trial is one dask task: it builds a model with `build_model(config, data)`, trains it with
fastnn.solver.Solver(verbose=False) and reports its best validation accuracy, final loss and histories. Configs
and per-trial seeds are all drawn up front from the search seed, and each trial runs with numba and BLAS pinned
to one thread, so the results are the same whatever the number of workers. A trial that raises or diverges is
recorded as failed with its error; it never stops the search.

`build_model` travels to the workers pickled with cloudpickle: make it a module-level function of a module the
workers can import (fastnn itself, your installed package) or of the script or notebook you run (those travel by
value). fastnn must be installed where the dask scheduler and workers run.
"""

from .model import FC_NET_KEYS, build_fc_net, default_space
from .result import SearchResult
from .search import coarse_to_fine, connect, narrow, random_search
from .space import (
    PARAM_TYPES,
    Choice,
    LogRandInt,
    LogUniform,
    RandInt,
    Uniform,
    check_space,
    choice,
    describe_space,
    lograndint,
    loguniform,
    randint,
    sample_configs,
    uniform,
)
from .trial import (
    OPTIM_KEYS,
    SOLVER_KEYS,
    TRIAL_OWNED_KEYS,
    Trial,
    run_trial,
    single_threaded,
    solver_settings,
    trial_seed,
)

__all__ = [
    # the search space
    "loguniform", "uniform", "randint", "lograndint", "choice", "LogUniform", "Uniform", "RandInt", "LogRandInt",
    "Choice", "PARAM_TYPES",
    "check_space", "sample_configs", "describe_space",
    # trials
    "Trial", "run_trial", "trial_seed", "solver_settings", "single_threaded", "SOLVER_KEYS", "OPTIM_KEYS",
    "TRIAL_OWNED_KEYS",
    # the default model
    "build_fc_net", "default_space", "FC_NET_KEYS",
    # the search
    "random_search", "coarse_to_fine", "narrow", "connect",
    # results
    "SearchResult",
]
