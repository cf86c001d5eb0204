#!/usr/bin/env python
"""Export the model of one epoch-end checkpoint of a run as a model folder (keep an epoch the run did not choose).

    python examples/export_checkpoint.py --run_dir ~/runs/e2e --checkpoint ~/runs/e2e/checkpoints/step_1316 \
        --output_dir out/e2e-epoch4 --reason "the last collapsed epoch, for the probes' contrast"

`--dtype bfloat16` stores the weights in bfloat16 (half the size; they load as float32 unless `dtype="auto"`).
`--fold_inputless` folds an inputless model's decoder embedding into its first layer (same function, fewer weights).

The folder loads with `AutoModel.from_pretrained`; its `train_results.json` and model card say which epoch it is
and why it was chosen (`--reason`). The logic lives in `hf_hrvae/training/checkpoints.py`.
"""

from dataclasses import dataclass, field

from hf_hrvae.training.checkpoints import WEIGHT_DTYPES, export_checkpoint
from hf_hrvae.scripts import parse_arguments, run_script


@dataclass
class ExportArguments:
    run_dir: str = field(metadata={"help": "the run's --output_dir (its config, tokenizer and train_results.json)"})
    checkpoint: str = field(metadata={"help": "a checkpoint written at an epoch's end: RUN_DIR/checkpoints/step_N"})
    output_dir: str = field(metadata={"help": "the new model folder"})
    reason: str = field(metadata={"help": "why this epoch (recorded in train_results.json and the model card)"})
    dtype: str = field(default="float32", metadata={
        "help": "the stored weights' dtype: bfloat16 halves the folder (it still loads as float32)",
        "choices": list(WEIGHT_DTYPES)})
    fold_inputless: bool = field(default=False, metadata={
        "help": "inputless models: fold the decoder's embedding (it sees only <s> and <unk>) into its first layer"})


def main():
    (args,) = parse_arguments(ExportArguments)
    results = export_checkpoint(args.run_dir, args.checkpoint, args.output_dir, args.reason, args.dtype,
                                args.fold_inputless)
    print(f"epoch {results['best_epoch']} of {results.get('epochs', '?')} written to {args.output_dir}")


if __name__ == "__main__":
    run_script(main)
