"""Helpers of `examples/benchmarks/benchmark.py`: model FLOPs from the config, the machine's matmul peak, timing."""

import collections
import contextlib
import importlib
import resource
import statistics
import time
import traceback
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from ..models.hrvae.recurrence_hrvae import forced_lstm_path


def matmul_flops(rows: int, inner: int, cols: int) -> int:
    return 2 * rows * inner * cols


def forward_flops_per_token(config) -> dict:
    """Matrix-multiply FLOPs of one forward pass per (real) token, by part, counted from the config.

    Only the model's own maths: the LSTM gates (input and recurrent matmuls), the posterior heads (at every step for
    `kl_regularisation="holistic"`, once per sentence otherwise: not counted per token) and the output layer.
    Element-wise work, the embedding look-ups and our exact cell-state recovery (an implementation detail) are not
    counted.
    """
    hidden, gates = config.hidden_size, 4 * config.hidden_size
    encoder = sum(
        matmul_flops(1, (config.embedding_size if layer == 0 else hidden) + hidden, gates)
        for layer in range(config.num_layers)
    )
    heads = 2 * matmul_flops(1, config.state_size, config.latent_dim) if config.kl_regularisation == "holistic" else 0
    if config.decoder_type == "lstm":
        decoder = matmul_flops(1, config.decoder_embedding_dim + 2 * hidden + hidden, gates) + sum(
            matmul_flops(1, 2 * hidden, gates) for _ in range(config.num_layers - 1)
        )
    else:
        channels = hidden
        decoder = matmul_flops(1, config.decoder_embedding_dim + config.latent_dim, channels) + sum(
            matmul_flops(1, config.cnn_kernel_size * channels, channels) for _ in config.cnn_dilations
        )
    output = matmul_flops(1, hidden, config.vocab_size)
    return {"encoder": encoder, "heads": heads, "decoder": decoder, "output": output,
            "total": encoder + heads + decoder + output}


def training_flops_per_token(config) -> int:
    """Forward + backward: about 3x the forward FLOPs (the backward computes gradients for inputs and weights)."""
    return 3 * forward_flops_per_token(config)["total"]


def decoding_flops_per_token(config) -> int:
    """One decoder step and the output layer (generation, importance sampling)."""
    parts = forward_flops_per_token(config)
    return parts["decoder"] + parts["output"]


def synchronizer(device) -> callable:
    """What waits for the device's queued work (CUDA runs asynchronously); a no-op on the CPU."""
    device = torch.device(device)
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def median_seconds(function, repeats: int = 5, warmup: int = 1, device="cpu") -> tuple[float, list[float]]:
    """Median wall time of `function()` over `repeats` runs after `warmup` runs; also every time. On a CUDA
    `device` each time runs until the device is idle."""
    times = interleaved_seconds({"function": function}, repeats=repeats, warmup=warmup, device=device)["function"]
    return statistics.median(times), times


def interleaved_seconds(functions: dict, repeats: int = 5, warmup: int = 1, device="cpu") -> dict[str, list[float]]:
    """Wall times of several functions run in alternation (round r runs each once, in the given order), `repeats`
    rounds after `warmup` rounds: `{name: [seconds of round 1, ...]}`.

    On a machine whose speed drifts (a shared host, a CPU that throttles) timing one function after the other
    biases their ratio; alternating them lets every round see the same conditions, so that the ratio of two
    functions' times in one round is a paired measurement ([`paired_ratio`]).
    """
    synchronize = synchronizer(device)
    for _ in range(warmup):
        for function in functions.values():
            function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            synchronize()
            start = time.perf_counter()
            function()
            synchronize()
            times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of `numerator[r] / denominator[r]` (times from [`interleaved_seconds`])."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f"paired_ratio needs two lists of the same non-zero length, got {len(numerator)} and "
                         f"{len(denominator)}.")
    return statistics.median(n / d for n, d in zip(numerator, denominator))


def comparison_cells(times: dict[str, list[float]], first: str, second: str) -> str:
    """Markdown cells `| median of first | median of second | paired first / second |` from
    [`interleaved_seconds`] times (seconds to 4 decimals, the ratio to 2)."""
    return (f"| {statistics.median(times[first]):.4f} | {statistics.median(times[second]):.4f} | "
            f"{paired_ratio(times[first], times[second]):.2f} |")


def write_table(lines: list[str], output_md: str | None = None) -> str:
    """The markdown `lines` as one text, written to `output_md` if given and printed; returns the text."""
    table = "\n".join(lines) + "\n"
    if output_md:
        Path(output_md).write_text(table)
    print(table)
    return table


def with_lstm_path(function, stepwise: bool):
    """`function` wrapped to run with the LSTM path forced (`recurrence_hrvae.forced_lstm_path`)."""

    def forced():
        with forced_lstm_path(stepwise):
            return function()

    return forced


_READ_BACKS = {"item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__"}
_aten = torch.ops.aten
_SYNCING_OPS = {_aten.nonzero.default, _aten.masked_select.default, _aten.is_nonzero.default,
                _aten._unique2.default, _aten.unique_consecutive.default, _aten.unique_dim.default}
_INDEXING_OPS = {_aten.index.Tensor, _aten.index_put.default, _aten.index_put_.default,
                 _aten._index_put_impl_.default}


class _ReadBacks(TorchFunctionMode):
    def __init__(self, record):
        super().__init__()
        self.record = record
        self.depth = 0  # > 0 while a read-back runs (its own _local_scalar_dense is not counted again)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name not in _READ_BACKS:
            return func(*args, **(kwargs or {}))
        self.record(f"Tensor.{name}")
        self.depth += 1
        try:
            return func(*args, **(kwargs or {}))
        finally:
            self.depth -= 1


class _DataDependentOps(TorchDispatchMode):
    def __init__(self, record, read_backs: _ReadBacks):
        super().__init__()
        self.record = record
        self.read_backs = read_backs

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _SYNCING_OPS or (func is _aten.repeat_interleave.Tensor and kwargs.get("output_size") is None):
            self.record(str(func))
        elif func is _aten._local_scalar_dense.default and not self.read_backs.depth:  # a read-back in C++
            self.record(str(func))
        elif func in _INDEXING_OPS and any(
            index is not None and index.dtype in (torch.bool, torch.uint8) for index in args[1]
        ):
            self.record(f"{func} with a boolean mask")
        return func(*args, **kwargs)


def package_file_test(package: str = "hf_hrvae") -> callable:
    """`in_package(filename) -> bool`: whether a file lies inside the imported `package`'s own directory (this
    module excepted), decided by the resolved path, not by a substring: a clone named like the package, or a
    virtual environment inside it, puts the package's name in every path under it."""
    root = Path(importlib.import_module(package).__file__).resolve().parent
    this_file = Path(__file__).resolve()

    def in_package(filename: str) -> bool:
        if not filename or filename.startswith("<"):  # <frozen ...>, <string>: not a file
            return False
        path = Path(filename).resolve()
        return path != this_file and path.is_relative_to(root)

    return in_package


@contextlib.contextmanager
def count_host_syncs(package: str = "hf_hrvae"):
    """Count, on any device, the operations that would make the host wait for a GPU: values read back to Python
    (`.item()`, `.tolist()`, `bool(t)`, ...) and operations whose output size depends on the data (`nonzero`,
    boolean-mask indexing forward and backward, `unique`, `repeat_interleave` without `output_size`). Yields a
    `collections.Counter` of `(operation, where)`, `where` being the innermost `file:line` of `package` on the
    stack ("?" outside it, e.g. in the autograd engine).

    On a CPU nothing waits, but the same code waits on a GPU: this finds the synchronisations of a training step
    without one. Backward passes run inside the block count when they run on this thread (the CPU's do).
    """
    calls = collections.Counter()
    in_package = package_file_test(package)

    def record(operation):
        frames = [frame for frame in traceback.extract_stack() if in_package(frame.filename)]
        where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"
        calls[(operation, where)] += 1

    read_backs = _ReadBacks(record)
    with read_backs, _DataDependentOps(record, read_backs):
        yield calls


def sgemm_peak_gflops(size: int | None = None, repeats: int = 10, dtype=torch.float32, device="cpu") -> float:
    """Measured matmul throughput (GFLOP/s) on `(4 size, size) @ (size, size)` in `dtype` (fp32 by default: the
    sgemm peak; on CUDA with TF32 as `torch.backends.cuda.matmul.allow_tf32` says). `size`: 1024 on the CPU, 8192
    on a GPU."""
    size = size or (8192 if torch.device(device).type == "cuda" else 1024)
    a = torch.randn(4 * size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    seconds, _ = median_seconds(lambda: a @ b, repeats=repeats, warmup=3, device=device)
    return matmul_flops(4 * size, size, size) / seconds / 1e9


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_device_memory_mb(device) -> float | None:
    """CUDA: the most memory the caching allocator has handed out so far (MB); None on the CPU."""
    device = torch.device(device)
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


__all__ = [
    "forward_flops_per_token",
    "training_flops_per_token",
    "decoding_flops_per_token",
    "median_seconds",
    "interleaved_seconds",
    "paired_ratio",
    "comparison_cells",
    "write_table",
    "with_lstm_path",
    "sgemm_peak_gflops",
    "peak_rss_mb",
    "peak_device_memory_mb",
    "synchronizer",
    "count_host_syncs",
    "package_file_test",
]
