"""The trainer's checkpoints: where they are, which one `--resume_from_checkpoint` means, and exporting one as a
model folder (to keep an epoch other than the one the run chose)."""

import json
import shutil
from pathlib import Path

from ..errors import CheckpointNotFoundError, ModelNotFoundError, OutputExistsError

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"


def list_checkpoints(output_dir) -> list[Path]:
    """Complete checkpoints (`step_N`, not `step_N.partial`), oldest first."""
    folders = [p for p in (Path(output_dir) / CHECKPOINT_DIR).glob("step_*") if p.name[5:].isdigit()]
    return sorted((p for p in folders if (p / STATE_FILE).exists()), key=lambda p: int(p.name[5:]))


def find_checkpoint(output_dir, resume_from_checkpoint: str) -> Path:
    """The checkpoint `--resume_from_checkpoint` names: `latest` (the newest in `output_dir`), a checkpoint folder
    (`.../checkpoints/step_N`), or a folder holding checkpoints (a run's output folder, or its `checkpoints/`):
    its newest one."""
    accepted = ("'latest' (the newest checkpoint of --output_dir), a checkpoint folder (OUTPUT_DIR/checkpoints/"
                "step_N), or a folder holding checkpoints (OUTPUT_DIR or OUTPUT_DIR/checkpoints: its newest one)")
    if resume_from_checkpoint == "latest":
        candidates = list_checkpoints(output_dir)
        if not candidates:
            raise CheckpointNotFoundError(
                f"--resume_from_checkpoint latest: no checkpoint in {Path(output_dir) / CHECKPOINT_DIR}.")
        return candidates[-1]
    path = Path(resume_from_checkpoint)
    if (path / STATE_FILE).exists():
        return path
    candidates = list_checkpoints(path.parent if path.name == CHECKPOINT_DIR else path)  # OUTPUT_DIR[/checkpoints]
    if candidates:
        return candidates[-1]
    if not path.is_dir():
        raise CheckpointNotFoundError(f"--resume_from_checkpoint {path}: no such folder. Accepted: {accepted}.")
    found = sorted(child.name for child in path.iterdir())
    shown = ", ".join(found[:20]) + (f", ... ({len(found)} entries)" if len(found) > 20 else "") or "nothing"
    raise CheckpointNotFoundError(
        f"--resume_from_checkpoint {path}: neither a checkpoint of this trainer (no {STATE_FILE}) nor a folder "
        f"holding one; it holds: {shown}. Accepted: {accepted}.")


WEIGHT_DTYPES = ("float32", "bfloat16")


def export_checkpoint(run_dir, checkpoint, output_dir, reason: str, dtype: str = "float32",
                      fold_inputless: bool = False) -> dict:
    """Write the model of an epoch-end `checkpoint` of the run in `run_dir` as a model folder in `output_dir`:
    weights, config and code (`save_pretrained`), the tokenizer, and the run's `train_results.json` with that epoch
    as the exported one and `reason` (why it was chosen, by whom) as `exported_by`. Returns the train results.

    `dtype="bfloat16"` stores the weights in bfloat16 (half the size: a 10k-word vocabulary fits 40 MB); the folder
    still loads as float32 unless `from_pretrained(..., dtype="auto")` is asked. Evaluate the exported folder, not
    the run: its weights are rounded. `fold_inputless=True` writes an inputless model with its decoder embedding
    folded into the first layer ([`fold_inputless_embedding`]: the same function, fewer weights)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from ..models.hrvae.configuration_hrvae import HRVAEConfig
    from ..models.hrvae.modeling_hrvae import HRVAEModel
    from .folding import fold_inputless_embedding

    run_dir, checkpoint, output_dir = Path(run_dir), Path(checkpoint), Path(output_dir)
    if not (run_dir / "config.json").exists():
        raise ModelNotFoundError(f"--run_dir {run_dir}: " + ("no config.json there" if run_dir.is_dir() else
                                 "no such folder") + "; give the run's --output_dir (it holds config.json).")
    if not (checkpoint / STATE_FILE).exists():
        found = ", ".join(path.name for path in list_checkpoints(run_dir)[-5:]) or "none"
        raise CheckpointNotFoundError(f"--checkpoint {checkpoint}: no {STATE_FILE}, not a checkpoint of the trainer; "
                                      f"give RUN_DIR/{CHECKPOINT_DIR}/step_N (the run's newest: {found}).")
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"--dtype {dtype!r}: choose one of {', '.join(WEIGHT_DTYPES)}.")
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise OutputExistsError(f"--output_dir {output_dir} is not empty: export into a new folder.")
    state = json.loads((checkpoint / STATE_FILE).read_text())
    if state["batch_in_epoch"]:
        raise CheckpointNotFoundError(f"--checkpoint {checkpoint} was written inside an epoch: export a checkpoint "
                                      "of an epoch's end (--checkpointing_steps epoch writes them).")
    validation = next((v for v in state["validations"] if v["step"] == state["completed_steps"]), None)
    if validation is None:
        raise CheckpointNotFoundError(f"--checkpoint {checkpoint} holds no validation of its step "
                                      f"({state['completed_steps']}): export a checkpoint of an epoch's end.")
    model = HRVAEModel(HRVAEConfig.from_pretrained(run_dir))
    model.load_state_dict(load_file(checkpoint / "model.safetensors"))
    if fold_inputless:
        model = fold_inputless_embedding(model)
    model.to(getattr(torch, dtype)).save_pretrained(output_dir)
    AutoTokenizer.from_pretrained(run_dir).save_pretrained(output_dir)
    results_file = run_dir / "train_results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {"validations": state["validations"]}
    results.update(exported_by=reason, run_best_epoch=results.get("best_epoch"), best_epoch=validation["epoch"],
                   best_validation=validation,
                   best_metric=validation.get(results.get("metric_for_best_model", "elbo_nll")), weights_dtype=dtype,
                   folded_inputless_embedding=fold_inputless)
    (output_dir / "train_results.json").write_text(json.dumps(results, indent=1))
    for name in ("train_log.jsonl", "training_curves.png"):
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, output_dir / name)
    return results


__all__ = ["CHECKPOINT_DIR", "STATE_FILE", "WEIGHT_DTYPES", "list_checkpoints", "find_checkpoint", "export_checkpoint"]
