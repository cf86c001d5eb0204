#!/usr/bin/env python
"""Time the encoder and the decoder of HRVAEModel on both LSTM paths (hf_hrvae/models/hrvae/recurrence_hrvae.py), with and
without gradients, in alternating rounds: the measurements behind `use_stepwise_lstm`'s choices.

    python examples/benchmarks/benchmark_paths.py --output_md results/benchmarks/benchmark-paths.md

A random model of the paper's sizes (its weights do not change the cost); random token ids.
"""

from dataclasses import dataclass, field

import torch
from transformers import HfArgumentParser

from hf_hrvae import HRVAEConfig, HRVAEModel
from hf_hrvae.paper.benchmarking import comparison_cells, interleaved_seconds, write_table, with_lstm_path


@dataclass
class PathArguments:
    vocab_size: int = 1196
    length: int = field(default=22, metadata={"help": "tokens per row"})
    rows: list[int] = field(default_factory=lambda: [128, 1024], metadata={"help": "batch sizes"})
    repeats: int = 6
    output_md: str | None = None


PATHS = ("stepwise", "library")


def cases(model, rows: int, length: int, vocab_size: int):
    """`{part: {"stepwise": function, "library": function}}`: each part in the mode it runs in (training mode with
    gradients, eval mode without), on the path forced."""
    ids = torch.randint(4, vocab_size, (rows, length))
    latent = torch.randn(rows, model.config.latent_dim, requires_grad=True)

    def decode(per_step: bool):
        state = model.decoder.initial_state(latent)
        if not per_step:
            return model.decoder(ids, state)[0]
        logits = []
        for t in range(length):
            step, state = model.decoder(ids[:, t : t + 1], state)
            logits.append(step)
        return torch.cat(logits, dim=1)

    def case(part, grad, per_step=False):
        def run():
            model.train(grad)
            with torch.set_grad_enabled(grad):
                out = model.encoder(ids) if part == "encoder" else decode(per_step)
            if grad:
                out.sum().backward()

        return {path: with_lstm_path(run, path == "stepwise") for path in PATHS}

    return {
        "encoder, forward + backward": case("encoder", True),
        "decoder, forward + backward": case("decoder", True),
        "decoder one token at a time, forward + backward": case("decoder", True, per_step=True),
        "encoder, no gradients": case("encoder", False),
        "decoder, no gradients": case("decoder", False),
    }


def main():
    (args,) = HfArgumentParser(PathArguments).parse_args_into_dataclasses()
    torch.manual_seed(0)
    model = HRVAEModel(HRVAEConfig(vocab_size=args.vocab_size, setting="inputless")).train()
    lines = [f"Seconds per call (median of {args.repeats} alternating rounds after one warm-up; {args.length} tokens "
             f"per row, vocabulary {args.vocab_size}, the paper's sizes; with gradients in training mode (dropout), "
             f"without in eval mode; decoder: its LSTM and output layer).", "",
             "| part | rows | library s | stepwise s | library / stepwise (paired median) |", "|---|---|---|---|---|"]
    for rows in args.rows:
        for name, functions in cases(model, rows, args.length, args.vocab_size).items():
            times = interleaved_seconds(functions, repeats=args.repeats, warmup=1)
            lines.append(f"| {name} | {rows} " + comparison_cells(times, "library", "stepwise"))
            print(lines[-1], flush=True)
    write_table(lines, args.output_md)


if __name__ == "__main__":
    main()
