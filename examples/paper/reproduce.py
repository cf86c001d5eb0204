#!/usr/bin/env python
"""Reproduce Table 2 / Figure 2 / Table 3: train, evaluate on the test split and record each run in
`results/{dataset}-{preset}-{setting}[-{variant}].json`; then `examples/paper/make_results.py` writes docs/results.md
and results/README.md.

    python examples/paper/reproduce.py --runs e2e-hrvae-inputless e2e-vae-lstm-base-inputless \
        --max_train_minutes 120 --iw_samples 500 --parallel 1

Each run is `examples/train.py` then `examples/evaluate.py` (subprocesses, logs in `{work_dir}/{name}/`), then the
record (samples from the trained model). `--parallel N` runs N at a time (a GPU holds several). The run names and
the record layout live in `hf_hrvae/paper/results.py`.
"""

import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from hf_hrvae.paper.results import RunSpec, build_record, qualitative_samples
from hf_hrvae.scripts import command_line

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE.parent  # examples/: train.py, evaluate.py


@dataclass
class ReproduceArguments:
    runs: list[str] = field(default_factory=list, metadata={"help": "e.g. e2e-hrvae-inputless ptb-vae-cnn-standard "
                                                                    "e2e-hrvae-inputless-word2vec"})
    data_root: str = "../shared/data"
    work_dir: str = field(default="runs", metadata={"help": "models, logs and checkpoints of the runs"})
    results_dir: str = "results"
    num_train_epochs: int = 100
    max_train_minutes: float | None = field(default=None, metadata={"help": "time budget of each run's training"})
    iw_samples: int = 500
    iw_samples_baselines: int | None = field(default=None, metadata={"help": "k for the baselines (default: "
                                                                             "--iw_samples)"})
    eval_batch_size: int = 32
    rows_per_chunk: int = 2048
    parallel: int = 1
    train_extra: str = field(default="", metadata={"help": "more flags for examples/train.py, one string"})
    eval_extra: str = field(default="", metadata={"help": "more flags for examples/evaluate.py, one string"})
    evaluate_only: bool = field(default=False, metadata={"help": "evaluate and record runs already trained in "
                                                                 "--work_dir (e.g. after an evaluation failed)"})
    collect_only: bool = field(default=False, metadata={"help": "only (re)write the records of finished runs"})


def run_logged(command: list[str], log_path: Path, env: dict) -> None:
    with open(log_path, "w", encoding="utf-8") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    if code:
        raise RuntimeError(f"{shlex.join(command)} failed ({code}); see {log_path}")


def collect(spec: RunSpec, args: ReproduceArguments) -> Path:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from hf_hrvae.training.data import load_text_splits
    from hf_hrvae.plotting import read_step_log

    run_dir = Path(args.work_dir) / spec.name
    train_results = json.loads((run_dir / "train_results.json").read_text())
    eval_results = json.loads((run_dir / "eval_test.json").read_text())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModel.from_pretrained(run_dir).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    # the sentences of the split the evaluation read: a run trained on its own files (--train_file) names no dataset
    evaluated = eval_results.get("arguments") or train_results["arguments"]
    texts = load_text_splits(evaluated["dataset_name"], text_column=evaluated.get("text_column"),
                             required=(eval_results["split"],))[eval_results["split"]]["text"]
    record = build_record(spec, train_results, eval_results, read_step_log(run_dir / "train_log.jsonl"),
                          samples=qualitative_samples(model, tokenizer, texts),
                          reproduce_command=os.environ.get("HRVAE_REPRODUCE_COMMAND"))
    path = Path(args.results_dir) / f"{spec.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return path


def run_one(spec: RunSpec, args: ReproduceArguments, env: dict) -> str:
    run_dir = Path(args.work_dir) / spec.name
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if args.evaluate_only and not (run_dir / "train_results.json").exists():
        raise FileNotFoundError(f"--evaluate_only: {run_dir} holds no finished training (train_results.json).")
    if not args.collect_only:
        if not args.evaluate_only:
            train = ["--num_train_epochs", str(args.num_train_epochs), *shlex.split(args.train_extra)]
            if args.max_train_minutes:
                train += ["--max_train_minutes", str(args.max_train_minutes)]
            run_logged([sys.executable, str(SCRIPTS / "train.py"), *spec.training_args(args.data_root, run_dir, train)],
                       run_dir / "train.log", env)
        k = args.iw_samples if spec.preset == "hrvae" else (args.iw_samples_baselines or args.iw_samples)
        evaluation = spec.evaluation_args(args.data_root, run_dir, run_dir / "eval_test.json", k,
                                          ["--batch_size", str(args.eval_batch_size),
                                           "--rows_per_chunk", str(args.rows_per_chunk),
                                           *shlex.split(args.eval_extra)])
        run_logged([sys.executable, str(SCRIPTS / "evaluate.py"), *evaluation], run_dir / "evaluate.log", env)
    run_logged([sys.executable, __file__, "--collect_only", "--parallel", "1", "--runs", spec.name,
                "--work_dir", args.work_dir, "--results_dir", args.results_dir, "--data_root", args.data_root],
               run_dir / "collect.log", {**env, "HRVAE_COLLECT_CHILD": "1"})
    return f"{spec.name}: done in {time.time() - start:.0f} s"


def main():
    (args,) = HfArgumentParser(ReproduceArguments).parse_args_into_dataclasses()
    specs = [RunSpec.parse(name) for name in args.runs]
    if not specs:
        raise SystemExit("--runs: name at least one run, e.g. e2e-hrvae-inputless")
    if os.environ.get("HRVAE_COLLECT_CHILD"):  # the record of one finished run, in its own process
        print(collect(specs[0], args))
        return
    threads = max(1, (os.cpu_count() or 1) // args.parallel)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1",
           "HRVAE_REPRODUCE_COMMAND": command_line(),
           "PYTHONPATH": os.pathsep.join([str(SCRIPTS.parent), os.environ.get("PYTHONPATH", "")])}
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        futures = {spec.name: pool.submit(run_one, spec, args, env) for spec in specs}
        failed = []
        for name, future in futures.items():
            try:
                print(future.result(), flush=True)
            except Exception as error:  # report every run, then fail
                failed.append(name)
                print(f"{name}: FAILED: {error}", flush=True)
    if failed:
        raise SystemExit(f"failed runs: {failed}")


if __name__ == "__main__":
    main()
