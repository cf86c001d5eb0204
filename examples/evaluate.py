#!/usr/bin/env python
"""Evaluate a trained HR-VAE: valid bounds (ELBO, importance-weighted NLL), MI, active units, BLEU, and the
paper's protocol, labelled as a comparison only.

    python examples/evaluate.py --model_name_or_path out/e2e --dataset_name ../shared/data/e2e_nlg --split test \
        --iw_samples 500 --output_file out/e2e/eval_test.json

Also runs under `accelerate launch`. The logic lives in `hf_hrvae/evaluation.py`.
"""

import json

from hf_hrvae.evaluation import EvaluationArguments, run_evaluation
from hf_hrvae.scripts import command_line, parse_arguments, run_script


def main():
    (args,) = parse_arguments(EvaluationArguments)
    command = command_line()
    results = run_evaluation(args, command=command)
    print(json.dumps({key: results[key] for key in ("split", "num_sentences", "valid", "paper_protocol")}, indent=1))


if __name__ == "__main__":
    run_script(main)
