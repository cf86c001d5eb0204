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
    # Per-sentence losses follow the sentence lengths of each batch (a saw-tooth with --group_by_length, whose
    # mega-batches of 50 batches are sorted by length): draw the raw values faintly and a 50-step running mean.
    window = max(1, min(50, len(entries) // 5))

    def curve(axis, key, label, color):
        values = [entry[key] for entry in entries]
        axis.plot(steps, values, color=color, linewidth=0.5, alpha=0.3)
        means = [sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
                 for i in range(len(values))]
        axis.plot(steps, means, color=color, linewidth=1.2, label=label)

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    curve(left, "reconstruction", f"running mean of {window} steps", "tab:blue")
    left.set_xlabel("step")
    left.set_ylabel("reconstruction loss (nats / sentence)")
    left.legend(frameon=False)
    curve(right, "kl_holistic", "KL, holistic (Eq. 3)", "tab:blue")
    curve(right, "kl_last", "KL of the used z", "tab:orange")
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


def save_figure(figure, png_path, dpi: int = 80) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; returns the path."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png_path, dpi=dpi)
    plt.close(figure)
    return png_path


__all__ = ["read_step_log", "plot_training_curves", "save_figure"]
