"""Training curves (reconstruction loss and KL over training, like Fig. 2 of the paper)."""

import json
from pathlib import Path


def read_step_log(log_path) -> list[dict]:
    """The per-step entries of a `train_log.jsonl`."""
    with open(log_path, encoding="utf-8") as handle:
        entries = [json.loads(line) for line in handle if line.strip()]
    return [entry for entry in entries if entry.get("kind") == "train_step"]


def plot_training_curves(log_path, png_path, title: str | None = None) -> Path:
    """Write a PNG with reconstruction loss (left) and KL (right: holistic training term and KL of the used z)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = read_step_log(log_path)
    if not entries:
        raise ValueError(f"{log_path} holds no training steps to plot.")
    steps = [entry["step"] for entry in entries]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(steps, [entry["reconstruction"] for entry in entries], color="tab:blue", linewidth=0.8)
    left.set_xlabel("step")
    left.set_ylabel("reconstruction loss (nats / sentence)")
    right.plot(steps, [entry["kl_holistic"] for entry in entries], label="KL, holistic (Eq. 3)", linewidth=0.8)
    right.plot(steps, [entry["kl_last"] for entry in entries], label="KL of the used z", linewidth=0.8)
    right.set_xlabel("step")
    right.set_ylabel("KL (nats / sentence)")
    right.legend(frameon=False)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    png_path = Path(png_path)
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return png_path


__all__ = ["read_step_log", "plot_training_curves"]
