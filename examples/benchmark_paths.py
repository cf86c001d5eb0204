#!/usr/bin/env python
"""Time the encoder and the decoder of HRVAEModel on both LSTM paths (hf_hrvae/recurrence_hrvae.py), with and
without gradients, in alternating rounds: the measurements behind `use_stepwise_lstm` and the decoder's choice.

    python examples/benchmark_paths.py --output_md docs/benchmark-paths.md

A random model of the paper's sizes (its weights do not change the cost); random token ids.
"""

import statistics
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import HfArgumentParser

from hf_hrvae import HRVAEConfig, HRVAEModel
from hf_hrvae.benchmarking import interleaved_seconds, paired_ratio, with_lstm_path


@dataclass
class PathArguments:
    vocab_size: int = 1196
    length: int = field(default=22, metadata={"help": "tokens per row"})
    rows: list[int] = field(default_factory=lambda: [128, 1024], metadata={"help": "batch sizes"})
    repeats: int = 6
    output_md: str | None = None


def decode(decoder, ids, latent, stepwise: bool, per_step: bool):
    """The decoder's LSTM and output layer on `ids`, on the path given (bypassing the decoder's own choice),
    over the whole sequence at once or one token at a time: `logits (B, T, V)`."""
    (hidden, cell), condition = decoder.initial_state(latent)
    state, inputs = (hidden, cell), decoder.dropout(decoder.dec_embedding(ids))
    pieces = inputs.split(1, dim=1) if per_step else [inputs]
    outputs = []
    for piece in pieces:
        if stepwise:
            output, state = decoder._stepwise_lstm(piece, state, condition)
        else:
            piece = torch.cat([piece, condition.unsqueeze(1).expand(-1, piece.shape[1], -1)], dim=-1)
            output, state = decoder.lstm(piece, state)
        outputs.append(output)
    return decoder.output_projection(torch.cat(outputs, dim=1))


def cases(model, rows: int, length: int, vocab_size: int):
    """`{part: {"stepwise": function, "library": function}}`."""
    ids = torch.randint(4, vocab_size, (rows, length))
    latent = torch.randn(rows, model.config.latent_dim, requires_grad=True)

    def encoder(stepwise, grad):
        def run():
            model.train(grad)  # training with dropout; evaluation (no gradients) in eval mode, as they run
            with torch.set_grad_enabled(grad):
                states = model.encoder(ids)
            if grad:
                states.sum().backward()

        return with_lstm_path(run, stepwise)

    def decoder(stepwise, grad, per_step=False):
        def run():
            model.train(grad)
            with torch.set_grad_enabled(grad):
                logits = decode(model.decoder, ids, latent, stepwise, per_step)
            if grad:
                logits.sum().backward()

        return run

    return {
        "encoder, forward + backward": {p: encoder(p == "stepwise", True) for p in PATHS},
        "decoder, forward + backward": {p: decoder(p == "stepwise", True) for p in PATHS},
        "decoder one token at a time, forward + backward": {p: decoder(p == "stepwise", True, True) for p in PATHS},
        "encoder, no gradients": {p: encoder(p == "stepwise", False) for p in PATHS},
        "decoder, no gradients": {p: decoder(p == "stepwise", False) for p in PATHS},
    }


PATHS = ("stepwise", "library")


def main():
    (args,) = HfArgumentParser(PathArguments).parse_args_into_dataclasses()
    torch.manual_seed(0)
    model = HRVAEModel(HRVAEConfig(vocab_size=args.vocab_size, setting="inputless")).train()
    lines = [f"Seconds per call (median of {args.repeats} alternating rounds after one warm-up; {args.length} tokens "
             f"per row, vocabulary {args.vocab_size}, the paper's sizes; with gradients in training mode (dropout), "
             f"without in eval mode; decoder: its LSTM and output layer).", "",
             "| part | rows | stepwise s | library s | library / stepwise (paired median) |", "|---|---|---|---|---|"]
    for rows in args.rows:
        for name, functions in cases(model, rows, args.length, args.vocab_size).items():
            times = interleaved_seconds(functions, repeats=args.repeats, warmup=1)
            lines.append(f"| {name} | {rows} | {statistics.median(times['stepwise']):.4f} | "
                         f"{statistics.median(times['library']):.4f} | "
                         f"{paired_ratio(times['library'], times['stepwise']):.2f} |")
            print(lines[-1], flush=True)
    table = "\n".join(lines) + "\n"
    if args.output_md:
        Path(args.output_md).write_text(table)
    print(table)


if __name__ == "__main__":
    main()
