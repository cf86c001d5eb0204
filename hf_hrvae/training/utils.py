"""Small helpers of the trainer that the paper tooling uses too (imported from here, never the other way)."""

import functools
import platform

import torch

from ..errors import HardwareError


def device_description() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def sample_indices(count: int, how_many: int = 5) -> list[int]:
    """Evenly spaced sentence indices (fixed, so every system reconstructs the same sentences)."""
    return [i * count // how_many for i in range(how_many)]


@functools.cache
def cpu_runs_bf16_lstm() -> bool:
    """Whether this CPU runs `nn.LSTM` under bf16 autocast: oneDNN's bf16 LSTM needs AVX512-BF16 or AMX, and on a
    CPU without them (e.g. AVX2 only) it fails with "could not create a primitive descriptor". Tried on a tiny
    LSTM once per process (milliseconds), so the answer is what the training would meet."""
    lstm = torch.nn.LSTM(4, 4)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(2, 1, 4))
    except RuntimeError:
        return False
    return True


def check_mixed_precision(mixed_precision: str | None, device: torch.device) -> None:
    """Raise [`HardwareError`] before any data is loaded when `mixed_precision` cannot run on `device`
    (bf16 on a CPU without a bf16 LSTM), instead of oneDNN's message at the first training step."""
    if mixed_precision == "bf16" and device.type == "cpu" and not cpu_runs_bf16_lstm():
        raise HardwareError("--mixed_precision bf16 needs a CPU whose oneDNN runs bf16 LSTMs (AVX512-BF16 or AMX); "
                            f"this one ({platform.processor() or platform.machine()}) does not: train with "
                            "--mixed_precision no (fp32)")


__all__ = ["check_mixed_precision", "cpu_runs_bf16_lstm", "device_description", "sample_indices"]
