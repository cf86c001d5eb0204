#!/usr/bin/env python
"""Train HR-VAE with accelerate.

    accelerate launch examples/train.py --dataset_name ../shared/data/e2e_nlg --setting inputless --output_dir out/e2e

The loop lives in `hf_hrvae/training.py`; `--help` lists every flag.
"""

import logging
import os
import shlex
import sys

from transformers import HfArgumentParser

from hf_hrvae.training import TrainingArguments, train


def main():
    (args,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    command = shlex.join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    results = train(args, command=command)
    best = results["best_validation"] or {}
    print(f"best validation ELBO-NLL {best.get('elbo_nll', float('nan')):.3f} at epoch {results['best_epoch']}; "
          f"model in {args.output_dir}")


if __name__ == "__main__":
    main()
