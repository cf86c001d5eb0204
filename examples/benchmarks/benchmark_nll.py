#!/usr/bin/env python
"""Time the reconstruction loss, output layer + token NLL with its backward pass, with `F.cross_entropy` and with
the CPU's `TokenNLL` (hf_hrvae/models/hrvae/losses_hrvae.py) in alternating rounds: the measurement behind `use_token_nll`.

    python examples/benchmarks/benchmark_nll.py --output_md results/benchmarks/benchmark-nll.md

Random hidden states, weights and targets of the paper's sizes (they do not change the cost).
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import HfArgumentParser

from hf_hrvae.paper.benchmarking import comparison_cells, interleaved_seconds, write_table
from hf_hrvae.models.hrvae.losses_hrvae import TokenNLL


@dataclass
class NLLArguments:
    vocab_sizes: list[int] = field(default_factory=lambda: [1196, 10002], metadata={"help": "E2E's and PTB's"})
    rows: int = field(default=128 * 22, metadata={"help": "predicted tokens (batch 128 x 22)"})
    hidden_size: int = 256
    repeats: int = 7
    output_md: str | None = None


def cases(rows: int, hidden_size: int, vocab_size: int) -> dict:
    hidden = torch.randn(rows, hidden_size, requires_grad=True)
    weight = (torch.randn(vocab_size, hidden_size) / hidden_size**0.5).requires_grad_()
    targets = torch.randint(0, vocab_size, (rows,))
    targets[::20] = -100  # some padding

    def run(nll):
        def step():
            nll(F.linear(hidden, weight), targets).sum().backward()

        return step

    return {"F.cross_entropy": run(lambda x, y: F.cross_entropy(x, y, ignore_index=-100, reduction="none")),
            "TokenNLL": run(TokenNLL.apply)}


def main():
    (args,) = HfArgumentParser(NLLArguments).parse_args_into_dataclasses()
    torch.manual_seed(0)
    lines = [f"Output layer ({args.hidden_size} -> vocabulary) and token NLL, forward + backward, on {args.rows} "
             f"tokens; seconds per call, median of {args.repeats} alternating rounds after one warm-up; "
             f"{torch.get_num_threads()} threads, torch {torch.__version__}.", "",
             "| vocabulary | F.cross_entropy s | TokenNLL s | F.cross_entropy / TokenNLL (paired median) |",
             "|---|---|---|---|"]
    for vocab_size in args.vocab_sizes:
        times = interleaved_seconds(cases(args.rows, args.hidden_size, vocab_size), repeats=args.repeats)
        lines.append(f"| {vocab_size:,} " + comparison_cells(times, "F.cross_entropy", "TokenNLL"))
    write_table(lines, args.output_md)


if __name__ == "__main__":
    main()
