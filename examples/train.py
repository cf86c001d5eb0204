#!/usr/bin/env python
"""Train HR-VAE with accelerate.

    accelerate launch examples/train.py --dataset_name ../shared/data/e2e_nlg --setting inputless --output_dir out/e2e

The loop lives in `hf_hrvae/training/trainer.py`; `--help` lists every flag.
"""

import logging

from hf_hrvae.scripts import command_line, parse_arguments, run_script
from hf_hrvae.training import TrainingArguments, train


def main():
    (args,) = parse_arguments(TrainingArguments)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    command = command_line()
    results = train(args, command=command)
    metric, best = results["metric_for_best_model"], results["best_validation"] or {}
    print(f"best validation {metric} {best.get(metric, float('nan')):.3f} at epoch {results['best_epoch']} "
          f"(of {results['epochs']}); model in {args.output_dir}")


if __name__ == "__main__":
    run_script(main)
