#!/usr/bin/env python
"""Benchmark HRVAEModel: training step against a naive per-step implementation of the same maths, hardware
utilisation, generation, importance-weighted NLL, peak memory. Writes JSON and a markdown table.

    python examples/benchmarks/benchmark.py --output_json results/benchmarks/benchmark-e2e.json

One function per benchmark; FLOP counting, timing and the sgemm peak live in `hf_hrvae/paper/benchmarking.py`, the
naive reference (shared with the tests) in `hf_hrvae/paper/naive.py`.
"""

import copy
import json
import platform
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import HfArgumentParser, LogitsProcessorList, SuppressTokensLogitsProcessor

from hf_hrvae import HRVAEConfig, HRVAEModel
from hf_hrvae.paper.benchmarking import (
    count_host_syncs,
    decoding_flops_per_token,
    interleaved_seconds,
    median_seconds,
    peak_device_memory_mb,
    paired_ratio,
    peak_rss_mb,
    sgemm_peak_gflops,
    training_flops_per_token,
    with_lstm_path,
)
from hf_hrvae.models.hrvae.recurrence_hrvae import forced_lstm_path, use_stepwise_lstm
from hf_hrvae.paper.naive import NaiveHRVAE
from hf_hrvae.training.data import EpochSampler, padding_fraction, tokenizer_for


@dataclass
class BenchmarkArguments:
    data_folder: str = field(default="../shared/data/e2e_nlg", metadata={"help": "train.csv of E2E or PTB"})
    setting: str = field(default="inputless", metadata={"choices": ["standard", "inputless"]})
    batch_size: int = 128
    num_batches: int = field(default=4, metadata={"help": "batches per timed repetition"})
    repeats: int = 5
    iw_sentences: int = 16
    iw_samples: int = 500
    seed: int = 0
    device: str = field(default="cpu", metadata={"help": "cpu, cuda or cuda:N"})
    autocast: str = field(default="no", metadata={"choices": ["no", "bf16", "fp16"],
                                                  "help": "autocast of the training steps (both implementations)"})
    compile: bool = field(default=False, metadata={"help": "time the fused model under torch.compile(dynamic=True) "
                                                           "(the warm-up repetition includes the compilation)"})
    lstm_path: str = field(default="auto", metadata={
        "choices": ["auto", "stepwise", "library"],
        "help": "how the fused model runs its LSTMs (hf_hrvae/models/hrvae/recurrence_hrvae.py): auto (stepwise on the CPU without "
                "autocast, library otherwise), or forced"})
    compare_paths: bool = field(default=False, metadata={
        "help": "also time the fused model with the library LSTM path in the same alternating rounds (the paired "
                "gain of the stepwise path)"})
    profile: bool = field(default=False, metadata={"help": "print torch.profiler's table of one fused training "
                                                           "step on a length-grouped batch, then stop"})
    output_json: str | None = None
    output_md: str | None = None


def make_batches(tokenizer, texts, batch_size, count, grouped, seed, device="cpu"):
    encoded = tokenizer(texts)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    order = list(EpochSampler(lengths, batch_size, seed, group_by_length=grouped))
    starts = [round(i * (len(order) // batch_size - 1) / max(count - 1, 1)) * batch_size for i in range(count)]
    batches = [tokenizer.pad({"input_ids": [encoded[j] for j in order[s : s + batch_size]]}, return_tensors="pt")
               for s in starts]
    batches = [{key: value.to(device) for key, value in batch.items()} for batch in batches]
    return batches, padding_fraction(lengths, batch_size, order)


def training_run(model, step_fn, batches, autocast="no"):
    """What one timing measures: forward + backward + fused Adam step on every batch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(autocast)

    def run():
        for batch in batches:
            with torch.autocast(next(model.parameters()).device.type, dtype=dtype, enabled=dtype is not None):
                loss = step_fn(batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    return run


def host_syncs(model, batch, autocast) -> dict:
    """`{"operation at file:line": count}` for one fused training step: the read-backs and data-dependent shapes a
    GPU would stop for (`hf_hrvae.paper.benchmarking.count_host_syncs`; counted the same way on any device)."""
    probe = copy.deepcopy(model)
    with count_host_syncs() as calls:
        training_run(probe, lambda b: probe(**b, labels=b["input_ids"]).loss, [batch], autocast)()
    return {f"{operation} at {where}": count for (operation, where), count in calls.items()}


def load_texts(data_folder: str) -> list[str]:
    """The training sentences of an E2E or PTB folder (`train.csv`)."""
    import csv

    with open(Path(data_folder) / "train.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    column = "human_reference" if "human_reference" in rows[0] else "sentence"
    return [row[column] for row in rows]


def profile_step(model, tokenizer, texts, args, device, peak_gflops: float) -> None:
    """Print torch.profiler's table of one fused training step on a length-grouped batch of median length."""
    from torch.profiler import ProfilerActivity, profile

    batches = make_batches(tokenizer, texts, args.batch_size, 5, True, args.seed, device)[0]
    batch = sorted(batches, key=lambda b: b["input_ids"].shape[1])[2]  # the median length of five
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)

    def step():
        model(**batch, labels=batch["input_ids"]).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    cuda = device.type == "cuda"
    wall, _ = median_seconds(step, repeats=20, warmup=5, device=device)
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as profiler:
        step()
        if cuda:
            torch.cuda.synchronize(device)
    events = profiler.key_averages()
    print(f"batch {tuple(batch['input_ids'].shape)}; sgemm peak {peak_gflops:.0f} GFLOP/s; one training step: "
          f"{1000 * wall:.1f} ms (median of 20); host synchronisations in it: "
          f"{host_syncs(model, batch, args.autocast)}")
    if cuda:  # a launch-bound step shows far less kernel time than wall time
        counted = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx")
        launches = sum(e.count for e in events if e.key in counted)
        syncs = sum(e.count for e in events if e.key == "cudaStreamSynchronize")
        kernel_ms = sum(e.self_device_time_total for e in events if e.key.startswith("aten::")) / 1000
        print(f"GPU kernel time of the aten operations: {kernel_ms:.1f} ms; {launches} kernel launches; "
              f"{syncs} stream synchronisations")
    print(events.table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=12))


def naive_minus_fused_loss(model, check: dict) -> float:
    """Correctness before speed: |naive loss - fused loss| on the batch `check` in eval mode (must be < 1e-3)."""
    model.eval()
    fused = model(**check, labels=check["input_ids"]).loss
    naive = NaiveHRVAE(model).eval()(check["input_ids"], check["attention_mask"])
    model.train()
    difference = abs(fused.item() - naive.item())
    assert difference < 1e-3, f"the naive loop's loss differs from the model's by {difference}"
    return difference


def benchmark_training(model, tokenizer, texts, args, device, peak_gflops: float) -> list[dict]:
    """Forward + backward + Adam of the fused model and the naive loop (and the library path with
    `--compare_paths`), same weights, same batches, in alternating rounds; one row per batching."""
    flops_per_token = training_flops_per_token(model.config)
    rows = []
    for grouped in (True, False):
        batches, padding = make_batches(tokenizer, texts, args.batch_size, args.num_batches, grouped, args.seed,
                                        device)
        sentences = sum(b["input_ids"].shape[0] for b in batches)
        tokens = sum(int(b["attention_mask"].sum()) - b["input_ids"].shape[0] for b in batches)  # predicted
        real_tokens = sum(int(b["attention_mask"].sum()) for b in batches)
        row = {"batches": "length-grouped" if grouped else "random", "padding": padding}
        fused = (lambda m: torch.compile(m, dynamic=True)) if args.compile else (lambda m: m)
        implementations = [("fused", fused), ("naive", NaiveHRVAE)]
        if args.compare_paths:
            implementations.append(("fused_library", fused))
        runs = {}
        for name, make in implementations:
            copy_ = copy.deepcopy(model)
            runner = make(copy_)
            if name == "naive":
                step = lambda b, m=runner: m(b["input_ids"], b["attention_mask"])  # noqa: E731
            else:
                step = lambda b, m=runner: m(**b, labels=b["input_ids"]).loss  # noqa: E731
            runs[name] = training_run(copy_, step, batches, args.autocast)
            if name == "fused_library":
                runs[name] = with_lstm_path(runs[name], stepwise=False)
        # alternating fused and naive, so that the machine's drifting speed hits both alike
        times = interleaved_seconds(runs, repeats=args.repeats, warmup=1, device=device)
        for name in runs:
            seconds = statistics.median(times[name])
            row[name] = {"seconds_per_batch": seconds / len(batches), "sentences_per_s": sentences / seconds,
                         "tokens_per_s": real_tokens / seconds, "predicted_tokens_per_s": tokens / seconds,
                         "gflops": flops_per_token * real_tokens / seconds / 1e9, "seconds": times[name]}
            row[name]["utilisation"] = row[name]["gflops"] / peak_gflops
        row["speedup"] = paired_ratio(times["naive"], times["fused"])  # median of the rounds' ratios
        if args.compare_paths:
            row["library_over_fused"] = paired_ratio(times["fused_library"], times["fused"])
        rows.append(row)
    return rows


def benchmark_generation(model, repeats: int, device) -> dict:
    """ms per new token at batch 1 and 128 for 16 and 64 tokens (never stopping at `</s>`), and prior samples
    (top-p 0.9, 30 tokens, 128 at a time) per second."""
    model.eval()
    never_end = LogitsProcessorList([SuppressTokensLogitsProcessor([model.config.eos_token_id])])
    generation = []
    for batch in (1, 128):
        latent = model.sample_prior(batch)
        for new_tokens in (16, 64):
            seconds, _ = median_seconds(
                lambda: model.generate(latent=latent, max_new_tokens=new_tokens, logits_processor=never_end),
                repeats=repeats, device=device)
            generation.append({"batch": batch, "new_tokens": new_tokens, "ms_per_token": 1000 * seconds / new_tokens})
    seconds, _ = median_seconds(lambda: model.generate(num_return_sequences=128, do_sample=True, top_p=0.9,
                                                       max_new_tokens=30), repeats=repeats, device=device)
    return {"generation": generation, "prior_sampling_sentences_per_s": 128 / seconds,
            "decoding_flops_per_token": decoding_flops_per_token(model.config)}


def benchmark_iw_nll(model, tokenizer, texts, args, device) -> float:
    """Sentences per second of the importance-weighted NLL (`--iw_samples`) over `--iw_sentences` sentences."""
    from accelerate import Accelerator
    from datasets import Dataset
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    from hf_hrvae.evaluation import evaluate_model

    data = Dataset.from_dict({"input_ids": tokenizer(texts[: args.iw_sentences])["input_ids"],
                              "index": list(range(args.iw_sentences))})
    accelerator = Accelerator(cpu=device.type == "cpu")
    loader = accelerator.prepare(DataLoader(data, batch_size=8, collate_fn=DataCollatorWithPadding(tokenizer)))
    seconds, _ = median_seconds(lambda: evaluate_model(model, loader, accelerator, iw_samples=args.iw_samples),
                                repeats=3, warmup=0, device=device)
    return args.iw_sentences / seconds


def run_benchmarks(args: BenchmarkArguments) -> dict | None:
    """Every benchmark in one run on the same machine (None with `--profile`, which only prints)."""
    torch.manual_seed(args.seed)
    texts = load_texts(args.data_folder)
    tokenizer = tokenizer_for(args.data_folder, texts)
    device = torch.device(args.device)
    model = HRVAEModel(HRVAEConfig(vocab_size=len(tokenizer), setting=args.setting)).to(device).train()
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.autocast)
    results = {"machine": machine, "device": str(device), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "arguments": asdict(args), "vocab_size": len(tokenizer)}
    results["sgemm_peak_gflops"] = sgemm_peak_gflops(device=device)
    with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        results["lstm_path"] = "stepwise" if use_stepwise_lstm(torch.zeros(1, device=device)) else "library"
    if device.type == "cuda":
        results["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    # utilisation of the training steps is relative to the peak of the precision they run in
    peak = sgemm_peak_gflops(dtype=autocast_dtype, device=device) if autocast_dtype else results["sgemm_peak_gflops"]
    results["training_peak_gflops"] = peak
    if args.profile:
        profile_step(model, tokenizer, texts, args, device, results["sgemm_peak_gflops"])
        return None
    check = tokenizer.pad({"input_ids": tokenizer(texts[:8])["input_ids"]}, return_tensors="pt").to(device)
    results["naive_minus_fused_loss"] = naive_minus_fused_loss(model, check)
    results["host_syncs_per_training_step"] = host_syncs(model, check, args.autocast)
    results["training"] = benchmark_training(model, tokenizer, texts, args, device, peak)
    results["training_flops_per_token"] = training_flops_per_token(model.config)
    results["peak_rss_mb_after_training"] = peak_rss_mb()
    results.update(benchmark_generation(model, args.repeats, device))
    results["iw_sentences_per_s"] = benchmark_iw_nll(model, tokenizer, texts, args, device)
    results["peak_rss_mb"] = peak_rss_mb()
    results["peak_device_memory_mb"] = peak_device_memory_mb(device)
    return results


def main():
    (args,) = HfArgumentParser(BenchmarkArguments).parse_args_into_dataclasses()
    with forced_lstm_path({"auto": None, "stepwise": True, "library": False}[args.lstm_path]):
        results = run_benchmarks(args)
    if results is None:
        return
    if args.output_json:
        Path(args.output_json).write_text(json.dumps(results, indent=1))
    table = markdown(results)
    if args.output_md:
        Path(args.output_md).write_text(table)
    print(table)


def markdown(results) -> str:
    peak = results["sgemm_peak_gflops"]
    precision = results["arguments"]["autocast"]
    compiled = " (fused model under torch.compile)" if results["arguments"].get("compile") else ""
    counted = results.get("host_syncs_per_training_step")
    syncs = "not counted" if counted is None else (
        f"{sum(counted.values())} ({', '.join(f'{n} × {where}' for where, n in counted.items())})" if counted else "0")
    lines = [f"Machine: {results['machine']}, {results['threads']} threads, torch {results['torch']}; "
             f"training steps in {'fp32' if precision == 'no' else precision + ' autocast'}{compiled}, "
             f"{results.get('lstm_path', 'library')} LSTMs "
             f"(generation and "
             f"IW-NLL in fp32); measured matmul peak {peak:.0f} GFLOP/s fp32"
             + ("" if precision == "no" else f", {results['training_peak_gflops']:.0f} GFLOP/s {precision}")
             + f"; model FLOPs {results['training_flops_per_token'] / 1e6:.1f} "
             f"MFLOP per token for a training step; vocabulary {results['vocab_size']}.", "",
             f"Host synchronisations in one fused training step (read-backs a GPU stops for): {syncs}.", "",
             "| training step (batch %d) | padding | naive s/batch | fused s/batch | speed-up | fused sentences/s | "
             "fused tokens/s | fused utilisation |" % results["arguments"]["batch_size"],
             "|---|---|---|---|---|---|---|---|"]
    for row in results["training"]:
        lines.append(f"| {row['batches']} batches | {row['padding']:.1%} | {row['naive']['seconds_per_batch']:.3f} | "
                     f"{row['fused']['seconds_per_batch']:.3f} | {row['speedup']:.2f}x | "
                     f"{row['fused']['sentences_per_s']:.0f} | {row['fused']['tokens_per_s']:.0f} | "
                     f"{row['fused']['utilisation']:.1%} |")
    for row in results["training"]:
        if "library_over_fused" in row:
            lines.append(f"\n{row['batches'].capitalize()} batches, fused model with the library LSTM path in the same "
                         f"rounds: {row['fused_library']['seconds_per_batch']:.3f} s/batch, "
                         f"{row['library_over_fused']:.2f}x the time of the {results['lstm_path']} path.")
    lines += ["", "| generation | batch 1 | batch 128 |", "|---|---|---|"]
    for new_tokens in (16, 64):
        cells = {g["batch"]: g["ms_per_token"] for g in results["generation"] if g["new_tokens"] == new_tokens}
        lines.append(f"| ms per token, {new_tokens} new tokens | {cells[1]:.2f} | {cells[128]:.2f} |")
    lines += ["", f"Prior sampling (128 at a time, 30 tokens): {results['prior_sampling_sentences_per_s']:.0f} "
              f"sentences/s. IW-NLL (k = {results['arguments']['iw_samples']}): "
              f"{results['iw_sentences_per_s']:.2f} sentences/s. Peak RSS {results['peak_rss_mb']:.0f} MB"
              + (f", peak CUDA memory allocated {results['peak_device_memory_mb']:.0f} MB."
                 if results.get("peak_device_memory_mb") else ".")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
