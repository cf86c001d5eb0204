"""Small helpers of the trainer that the paper tooling uses too (imported from here, never the other way)."""

import platform

import torch


def device_description() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def sample_indices(count: int, how_many: int = 5) -> list[int]:
    """Evenly spaced sentence indices (fixed, so every system reconstructs the same sentences)."""
    return [i * count // how_many for i in range(how_many)]


__all__ = ["device_description", "sample_indices"]
