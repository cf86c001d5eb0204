"""The chain of runs behind a warm-started model: `--model_name_or_path` points at a folder that may itself have been
trained from another one. A record of the last run alone would say "12 epochs", which is not what the model had."""

import json
from pathlib import Path


def _resolve(start: str, base: Path) -> Path:
    path = Path(start).expanduser()
    return path if path.is_absolute() else base / path


def training_lineage(train_results: dict, base=None, max_depth: int = 20, validations: bool = False) -> list[dict]:
    """The runs the model of `train_results` was initialised from, nearest first: each one's folder (as recorded),
    epochs, command and where it started from (with `validations`, also its per-epoch validation entries), read from
    the `train_results.json` of each `initialised_from` folder (relative paths from `base`, the current directory by
    default).

    A `train_results` that holds its own `lineage` (the trainer resolves it when a warm-started run begins, since a
    folder such as `models/NAME` may later hold another model) gives it, and an ancestor's ends the walk with it.
    The chain ends at a run from scratch; an ancestor whose folder or `train_results.json` is gone, or a folder met
    a second time (it was replaced by its own continuation, whose record says it started from itself), ends it with
    `{"folder": ..., "epochs": None}` (unknown), so a total is never silently short nor counted twice.
    """
    def stored(lineage):
        return [{key: value for key, value in step.items() if validations or key != "validations"}
                for step in lineage]

    if train_results.get("lineage") is not None:  # resolved by the trainer when the run began
        return stored(train_results["lineage"])[:max_depth]
    base = Path.cwd() if base is None else Path(base)
    chain, start, seen = [], train_results.get("initialised_from"), set()
    while start and len(chain) < max_depth:
        path = _resolve(start, base) / "train_results.json"
        if not path.is_file() or path.resolve() in seen:  # gone, or a folder that now holds its own continuation
            chain.append({"folder": start, "epochs": None, "command": None, "initialised_from": None}
                         | ({"validations": []} if validations else {}))
            break
        seen.add(path.resolve())
        parent = json.loads(path.read_text(encoding="utf-8"))
        chain.append({"folder": start, "epochs": parent.get("epochs"), "command": parent.get("command"),
                      "initialised_from": parent.get("initialised_from")}
                     | ({"validations": parent.get("validations") or []} if validations else {}))
        if parent.get("lineage") is not None:  # resolved when that run started: its folders may since hold others
            chain += stored(parent["lineage"])[: max_depth - len(chain)]
            break
        start = parent.get("initialised_from")
    return chain


def total_epochs(epochs: int, lineage: list[dict] | None) -> int | None:
    """The epochs of the run plus those of every run before it; None where an ancestor's count is unknown."""
    counts = [epochs] + [step["epochs"] for step in lineage or []]
    return None if any(count is None for count in counts) else sum(counts)


def epochs_phrase(record: dict) -> str:
    """How the models table says a record's epochs: from scratch, or the total of a chain of warm starts."""
    lineage = record.get("lineage")
    if not record.get("initialised_from"):
        return f"{record['epochs']} epochs from scratch"
    if not lineage:  # a record from before lineages were recorded
        return f"{record['epochs']} more epochs on the previous model"
    total = total_epochs(record["epochs"], lineage)
    parts = " + ".join(str(count) for count in reversed([record["epochs"]] + [s["epochs"] for s in lineage]))
    if total is None:
        return f"{record['epochs']} more epochs on runs of unknown length ({parts.replace('None', '?')})"
    return f"{total} epochs ({parts}, each run warm-started from the last)"
