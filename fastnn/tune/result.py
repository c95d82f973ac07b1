"""The results of a search: SearchResult holds the trials best first and writes them as a text table, JSON, CSV,
a scatter plot of validation accuracy against each log-scale parameter (matplotlib, imported only to plot) and the
best trial's params as a checkpoint, each file written atomically.
"""

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass

from .. import _checks as check
from .._files import atomic_open
from .space import describe_space


def _write_text(fn, path, text):
    """Write `text` to `path` atomically (fastnn._files.atomic_open); returns the path."""
    with atomic_open(path, "w", fn=fn, encoding="utf-8", newline="") as f:
        f.write(text)
    return path


def _strict_json(value):
    """value with every NaN or infinite float (a diverged trial's loss) as None: JSON has no NaN, and the
    NaN that json.dumps writes by default is refused by strict parsers (JSON.parse, jq)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


def _format_value(value, log_scale):
    if isinstance(value, float):
        return f"{value:.2e}" if log_scale else f"{value:.4g}"
    return str(value)


# What save() writes into its directory.
SAVED_FILES = {"json": "results.json", "csv": "results.csv", "best": "best.npz", "scatter": "scatter.png"}


@dataclass
class SearchResult:
    """The trials of a search, best first.

    - trials: Trials sorted by best validation accuracy (failed trials last)
    - spaces: the space of each round (one for random_search, coarse and fine for coarse_to_fine)
    - seed: the search seed
    - best_params: the params of the best trial (None if every trial failed)
    - best_model_state: the batchnorm running statistics that go with best_params (put them into a model with
      fastnn.checkpoint.restore_model_state(model, result.best_model_state); None if every trial failed)
    """

    trials: list
    spaces: list
    seed: int
    best_params: dict | None = None
    best_model_state: dict | None = None

    @property
    def best(self):
        """The best successful Trial, or None."""
        return next((t for t in self.trials if t.ok), None)

    @property
    def failed(self):
        return [t for t in self.trials if not t.ok]

    def _param_names(self):
        return list(dict.fromkeys(name for space in self.spaces for name in space))

    def _log_scale(self, name):
        return any(getattr(space.get(name), "log_scale", False) for space in self.spaces)

    def table(self, top=None):
        """The trials as a text table, best first (only the first `top` when given)."""
        if top is not None:
            top = check.integer("SearchResult.table", "top", top, minimum=1)
        names = self._param_names()
        header = ["rank", "trial", "round", "val_acc", "final_loss"] + names + ["status"]
        rows = []
        for rank, t in enumerate(self.trials[:top] if top else self.trials, start=1):
            status = "ok" if t.ok else f"failed: {t.error}"
            if len(status) > 60:
                status = status[:57] + "..."
            rows.append([str(rank), str(t.index), ("coarse", "fine")[t.round],
                         "-" if t.val_acc is None else f"{t.val_acc:.4f}",
                         "-" if t.final_loss is None else f"{t.final_loss:.4g}"]
                        + [_format_value(t.config.get(n, ""), self._log_scale(n)) for n in names] + [status])
        widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header] + rows]
        ok = sum(t.ok for t in self.trials)
        lines.append(f"{ok} of {len(self.trials)} trials succeeded (seed {self.seed})")
        return "\n".join(lines)

    def to_dict(self):
        """Everything but the params, as JSON-able dicts (a NaN or infinite loss as None)."""
        return _strict_json({"seed": self.seed, "spaces": [describe_space(s) for s in self.spaces],
                             "trials": [asdict(t) for t in self.trials]})

    def to_json(self, path):
        """Write to_dict() as strict JSON (atomically); returns the path."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"
        return _write_text("SearchResult.to_json", path, text)

    def to_csv(self, path):
        """One row per trial, best first: rank, index, round, seed, status, val_acc, final_loss, seconds, one
        column per parameter (lists as JSON), error. Written atomically; returns the path."""
        names = self._param_names()
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["rank", "index", "round", "seed", "status", "val_acc", "final_loss", "seconds"] + names
                        + ["error"])
        for rank, t in enumerate(self.trials, start=1):
            values = [json.dumps(v) if isinstance(v, list) else v for v in (t.config.get(n, "") for n in names)]
            writer.writerow([rank, t.index, t.round, t.seed, t.status, t.val_acc, t.final_loss, f"{t.seconds:.3f}"]
                            + values + [t.error or ""])
        return _write_text("SearchResult.to_csv", path, out.getvalue())

    def plot(self, path):
        """A PNG scatter of best validation accuracy against each log-scale parameter (log x axis), the
        course's picture; failed trials are left out. Needs matplotlib (pip install 'fastnn[plot]'); leaves
        matplotlib's global backend alone. Returns the path."""
        names = [n for n in self._param_names() if self._log_scale(n)]
        if not names:
            check.fail("SearchResult.plot", "the space has no loguniform parameter to plot against")
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as error:
            raise ImportError("SearchResult.plot needs matplotlib: pip install 'fastnn[plot]'") from error
        fig = Figure(figsize=(4.2 * len(names), 3.6), layout="constrained")
        FigureCanvasAgg(fig)
        ok = [t for t in self.trials if t.ok]
        accs = [t.val_acc or 0.0 for t in ok]
        for i, name in enumerate(names):
            ax = fig.add_subplot(1, len(names), i + 1)
            for round, marker, label in ((0, "o", "coarse"), (1, "^", "fine")):
                picked = [(t.config[name], a) for t, a in zip(ok, accs) if t.round == round]
                if picked:
                    ax.scatter(*zip(*picked), c=[a for _, a in picked], cmap="viridis", vmin=min(accs),
                               vmax=max(accs), marker=marker, label=label, edgecolors="k", linewidths=0.3)
            ax.set_xscale("log")
            ax.set_xlabel(name)
            ax.set_ylabel("best val accuracy")
            ax.grid(True, which="both", alpha=0.3)
            if len(self.spaces) > 1:
                ax.legend(loc="best", fontsize="small")
        n_failed = len(self.trials) - len(ok)
        fig.suptitle(f"{len(ok)} trials" + (f" ({n_failed} failed, not shown)" if n_failed else ""))
        with atomic_open(path, "wb", fn="SearchResult.plot") as f:
            fig.savefig(f, format="png", dpi=100)
        return path

    def save_best(self, path):
        """The best trial's params, batchnorm running statistics, config and score as a fastnn checkpoint (.npz,
        atomic); returns the path.

        fastnn.checkpoint.load_checkpoint(path)['params'] gives the params back; fastnn.transfer.load_params
        loads params and statistics into a model."""
        from ..checkpoint import save_checkpoint

        best = self.best
        if best is None or self.best_params is None:
            check.fail("SearchResult.save_best", f"none of the {len(self.trials)} trials succeeded")
        state = {"params": self.best_params, "config": best.config, "val_acc": best.val_acc, "trial": best.index,
                 "seed": best.seed, "search_seed": self.seed}
        if self.best_model_state is not None:
            state["model_state"] = self.best_model_state
        return save_checkpoint(path, state)

    def save(self, directory):
        """Write results.json, results.csv, scatter.png (when matplotlib is installed and the space has a
        log-scale parameter) and best.npz (when a trial succeeded) into `directory`, created if needed.

        Where the directory holds an earlier search (its results.json), that search's best.npz or scatter.png
        that this one does not write is removed, so the directory never holds the files of two searches. Returns a
        dict of what -> path, and 'skipped' -> the reasons for anything not written."""
        fn = "SearchResult.save"
        if not isinstance(directory, (str, os.PathLike)):
            check.fail(fn, f"directory must be a str or os.PathLike, got {type(directory).__name__}", TypeError)
        try:
            os.makedirs(directory, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            check.fail(fn, f"{os.fspath(directory)!r} is not a directory (a file is in the way)")
        path = {what: os.path.join(directory, name) for what, name in SAVED_FILES.items()}
        replaces_a_search = os.path.isfile(path["json"])
        written = {"json": self.to_json(path["json"]), "csv": self.to_csv(path["csv"])}
        skipped = []
        if self.best is not None:
            written["best"] = self.save_best(path["best"])
        else:
            skipped.append(f"{SAVED_FILES['best']}: no trial succeeded")
        try:
            written["scatter"] = self.plot(path["scatter"])
        except (ImportError, ValueError) as error:
            skipped.append(f"{SAVED_FILES['scatter']}: {error}")
        for what, stale in path.items() if replaces_a_search else ():  # the earlier search's, not rewritten
            if what not in written and os.path.isfile(stale):
                os.remove(stale)
        if skipped:
            written["skipped"] = skipped
        return written
