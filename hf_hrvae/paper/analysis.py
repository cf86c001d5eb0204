"""What the latent knows: linear probes of E2E's meaning-representation attributes, 2-D pictures, interpolations.

E2E gives every sentence a meaning representation (MR), `name[The Eagle], eatType[coffee shop], ...`. A linear
classifier per attribute, fitted on the training split's posterior means and scored on the test split's, measures
how much of the attribute the latent carries, beside the majority-class baseline. The probe is a few lines of torch
(multinomial logistic regression, L-BFGS, an L2 penalty) rather than scikit-learn: it is deterministic, needs no new
dependency, and runs where the model runs.
"""

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..evaluation import active_units, mutual_information
from ..plotting import save_figure

E2E_ATTRIBUTES = ("name", "eatType", "food", "priceRange", "customer rating", "area", "familyFriendly", "near")
ABSENT = "<absent>"  # an attribute the MR does not mention is a class of its own
MR_PATTERN = re.compile(r"\s*([^\[\],]+?)\s*\[([^\]]*)\]")


def parse_meaning_representation(mr: str) -> dict[str, str]:
    """`"name[The Eagle], eatType[pub]"` -> `{"name": "The Eagle", "eatType": "pub"}`."""
    values = {key: value.strip() for key, value in MR_PATTERN.findall(mr)}
    if mr.strip() and not values:
        raise ValueError(f"Not an E2E meaning representation: {mr!r}.")
    return values


def attribute_labels(mrs: list[str], attribute: str) -> list[str]:
    """The value of `attribute` in each MR, `ABSENT` where it is not mentioned."""
    return [parse_meaning_representation(mr).get(attribute, ABSENT) for mr in mrs]


@torch.no_grad()
def encode_posteriors(model, tokenizer, texts: list[str], batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and log-variance of the latent the decoder uses, `(N, D)` each, in the order of `texts`
    (batches sorted by length to cut padding; the order does not change the values)."""
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    mus, logvars = [None] * len(texts), [None] * len(texts)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = tokenizer([texts[i] for i in rows], return_tensors="pt", padding=True).to(model.device)
        mu, logvar = model.encode(batch["input_ids"], batch["attention_mask"])
        for position, row in enumerate(rows):
            mus[row] = mu[position].float().cpu()
            logvars[row] = logvar[position].float().cpu() if logvar is not None else torch.zeros_like(mus[row])
    return torch.stack(mus), torch.stack(logvars)


@dataclass
class LinearProbe:
    """Multinomial logistic regression on standardised features: `fit`, then `predict`."""

    l2: float = 1e-3
    max_iter: int = 200
    classes: list = field(default_factory=list)

    def fit(self, features: torch.Tensor, labels: list[str]) -> "LinearProbe":
        self.classes = sorted(set(labels))
        index = {label: i for i, label in enumerate(self.classes)}
        targets = torch.tensor([index[label] for label in labels])
        features = features.double()
        self.mean, self.std = features.mean(0), features.std(0).clamp(min=1e-6)
        x = (features - self.mean) / self.std
        self.weight = torch.zeros(x.shape[1], len(self.classes), dtype=torch.float64, requires_grad=True)
        self.bias = torch.zeros(len(self.classes), dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([self.weight, self.bias], max_iter=self.max_iter, line_search_fn="strong_wolfe")

        def loss():
            optimizer.zero_grad()
            value = torch.nn.functional.cross_entropy(x @ self.weight + self.bias, targets)
            value = value + self.l2 * self.weight.pow(2).sum()
            value.backward()
            return value

        if len(self.classes) > 1:
            optimizer.step(loss)
        return self

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> list[str]:
        x = (features.double() - self.mean) / self.std
        return [self.classes[i] for i in (x @ self.weight + self.bias).argmax(1).tolist()]


def accuracy(predicted: list[str], labels: list[str]) -> float:
    return sum(p == t for p, t in zip(predicted, labels)) / len(labels)


def probe_attributes(train_latents, train_mrs, test_latents, test_mrs, attributes=E2E_ATTRIBUTES,
                     l2=1e-3) -> tuple[dict, dict]:
    """Per attribute: the probe's test accuracy, the majority class of the training split and its test accuracy
    (the baseline), and the test split's own most frequent class's share (no constant guess does better; E2E's test
    split has other names and other proportions than its training split); and the fitted probes,
    `{attribute: LinearProbe}`."""
    results, probes = {}, {}
    for attribute in attributes:
        train_labels, test_labels = attribute_labels(train_mrs, attribute), attribute_labels(test_mrs, attribute)
        counts = {label: train_labels.count(label) for label in set(train_labels)}
        majority = max(sorted(counts), key=counts.get)
        probe = probes[attribute] = LinearProbe(l2=l2).fit(train_latents, train_labels)
        results[attribute] = {
            "accuracy": accuracy(probe.predict(test_latents), test_labels),
            "majority_baseline": accuracy([majority] * len(test_labels), test_labels),
            "majority_class": majority,
            "test_majority_share": max(test_labels.count(label) for label in set(test_labels)) / len(test_labels),
            "num_classes": len(probe.classes),
        }
    return results, probes


def pca_2d(latents: torch.Tensor) -> torch.Tensor:
    """The first two principal components of `(N, D)` latents: `(N, 2)` (exact SVD of the centred data)."""
    centred = latents.double() - latents.double().mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    return (centred @ vh[:2].T).float()


def plot_latent_pca(latents, mrs, png_path, attributes=("eatType", "area", "familyFriendly"), title=None) -> Path:
    """One panel per attribute: the latents' first two principal components, coloured by the attribute's value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = pca_2d(latents)
    figure, axes = plt.subplots(1, len(attributes), figsize=(4.2 * len(attributes), 3.8))
    for axis, attribute in zip(axes, attributes):
        labels = attribute_labels(mrs, attribute)
        for i, value in enumerate(sorted(set(labels))):
            chosen = torch.tensor([label == value for label in labels])
            axis.scatter(points[chosen, 0], points[chosen, 1], s=3, alpha=0.5, color=f"C{i}", label=value)
        axis.set(title=attribute, xlabel="PC 1", ylabel="PC 2")
        axis.legend(frameon=False, fontsize=7, markerscale=3)
    if title:
        figure.suptitle(title)
    return save_figure(figure, png_path)


@torch.no_grad()
def interpolation_with_probes(model, tokenizer, start_text, end_text, probes: dict, steps: int = 7,
                              max_new_tokens: int = 60) -> list[dict]:
    """Greedy decodes of `steps` points on the line between two sentences' posterior means, each with what the
    attribute probes read off the point itself: `[{"weight", "text", attribute: value, ...}]`."""
    ends = [model.posterior_mode(*model.encode(**tokenizer(text, return_tensors="pt").to(model.device)))[0]
            for text in (start_text, end_text)]
    weights = torch.linspace(0, 1, steps, device=model.device)
    points = (1 - weights).unsqueeze(1) * ends[0] + weights.unsqueeze(1) * ends[1]
    texts = tokenizer.batch_decode(model.generate(latent=points, max_new_tokens=max_new_tokens),
                                   skip_special_tokens=True)
    rows = []
    for weight, point, text in zip(weights.tolist(), points.float().cpu(), texts):
        row = {"weight": round(weight, 4), "text": text.strip()}
        row.update({attribute: probe.predict(point.unsqueeze(0))[0] for attribute, probe in probes.items()})
        rows.append(row)
    return rows


@dataclass
class ProbeArguments:
    """Flags of `examples/probe_latent.py`."""

    model_name_or_path: str = field(metadata={"help": "a folder written by examples/train.py, or a Hub id"})
    dataset_name: str = field(default="../shared/data/e2e_nlg", metadata={"help": "E2E, with its MR column"})
    output_file: str | None = field(default=None, metadata={"help": "the JSON of the probes"})
    figure: str | None = field(default=None, metadata={"help": "a PNG of the test latents' first two PCs"})
    max_train_samples: int | None = None
    max_test_samples: int | None = None
    l2: float = field(default=1e-3, metadata={"help": "the probes' L2 penalty on standardised latents"})
    seed: int = 0
    interpolation_steps: int = 7
    save_probes: str | None = field(default=None, metadata={
        "help": "also write the fitted probes (on posterior means) to this .safetensors file, for the Space "
                "(examples/space/probes.safetensors)"})


def run_probes(args: ProbeArguments, command: str | None = None) -> dict:
    """Encode E2E's train and test splits, fit and score the probes, MI and AU of the test latents, a picture and
    an interpolation between two test sentences whose MRs differ; write `args.output_file`."""
    from ..training.data import load_raw_dataset
    from ..errors import DataError
    from ..loading import load_pretrained

    model, tokenizer = load_pretrained(args.model_name_or_path)
    model.eval()
    raw = load_raw_dataset(args.dataset_name)
    lacking = [split for split in ("train", "test") if split not in raw or not {"meaning_representation",
               "human_reference"} <= set(raw[split].column_names)]
    if lacking:
        raise DataError(f"--dataset_name {args.dataset_name}: the probes read E2E's meaning representations (columns "
                        f"meaning_representation, human_reference of its train and test splits), which "
                        f"{', '.join(lacking)} lack; give E2E (e.g. ../shared/data/e2e_nlg).")
    splits = {}
    for split, limit in (("train", args.max_train_samples), ("test", args.max_test_samples)):
        rows = [(mr, text) for mr, text in zip(raw[split]["meaning_representation"], raw[split]["human_reference"])
                if text and text.strip()]
        splits[split] = rows[:limit] if limit else rows
    latents = {split: encode_posteriors(model, tokenizer, [text for _, text in rows]) for split, rows in splits.items()}
    mrs = {split: [mr for mr, _ in rows] for split, rows in splits.items()}
    probes, fitted = probe_attributes(latents["train"][0], mrs["train"], latents["test"][0], mrs["test"], l2=args.l2)
    # The same probes on one posterior sample per sentence: what the decoder is given. A collapsed latent can keep
    # tiny differences between posterior means that a probe on standardised means reads, drowned in the noise.
    generator = torch.Generator().manual_seed(args.seed)
    samples = {split: mu + torch.randn(mu.shape, generator=generator) * torch.exp(0.5 * logvar)
               for split, (mu, logvar) in latents.items()}
    on_samples, _ = probe_attributes(samples["train"], mrs["train"], samples["test"], mrs["test"], l2=args.l2)
    mu, logvar = latents["test"]
    results = {
        "model": args.model_name_or_path, "command": command, "arguments": asdict(args),
        "num_train": len(splits["train"]), "num_test": len(splits["test"]),
        "probes": probes,
        "probes_on_samples": on_samples,
        "mutual_info": mutual_information(mu, logvar, samples["test"]),
        "active_units": active_units(mu),
    }
    if args.figure:
        plot_latent_pca(mu, mrs["test"], args.figure, title=f"{Path(args.model_name_or_path).name}: test latents")
        results["figure"] = args.figure
    shown = {attribute: fitted[attribute] for attribute in ("eatType", "area", "familyFriendly")}
    start, end = pick_interpolation_ends(mrs["test"])
    results["interpolation"] = {
        "from": splits["test"][start][1], "from_mr": mrs["test"][start],
        "to": splits["test"][end][1], "to_mr": mrs["test"][end],
        "points": interpolation_with_probes(model, tokenizer, splits["test"][start][1], splits["test"][end][1],
                                            shown, steps=args.interpolation_steps),
    }
    if args.output_file:
        Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output_file).write_text(json.dumps(results, indent=1))
    if args.save_probes:
        results["saved_probes"] = str(save_probes(fitted, args.save_probes))
    return results


def save_probes(probes: dict, path) -> Path:
    """The fitted probes `{attribute: LinearProbe}` as one safetensors file: `ATTRIBUTE.{mean,std,weight,bias}`
    (float32: half the size of the float64 fit, and a probe reads an argmax) and the classes in the metadata
    (`classes`: JSON). What the Space's `load_probes` reads."""
    from safetensors.torch import save_file

    tensors = {}
    for attribute, probe in probes.items():
        for part in ("mean", "std", "weight", "bias"):
            tensors[f"{attribute}.{part}"] = getattr(probe, part).detach().float().contiguous()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"classes": json.dumps({a: p.classes for a, p in probes.items()})})
    return path


def pick_interpolation_ends(mrs: list[str], attributes=("eatType", "area", "familyFriendly")) -> tuple[int, int]:
    """The first test sentence, and the first after it whose MR differs from it in every one of `attributes`
    (fixed, so that every model interpolates between the same two sentences)."""
    first = parse_meaning_representation(mrs[0])
    for index, mr in enumerate(mrs[1:], start=1):
        other = parse_meaning_representation(mr)
        if all(first.get(a, ABSENT) != other.get(a, ABSENT) for a in attributes):
            return 0, index
    return 0, len(mrs) - 1


__all__ = [
    "E2E_ATTRIBUTES", "ABSENT", "parse_meaning_representation", "attribute_labels", "encode_posteriors",
    "LinearProbe", "probe_attributes", "pca_2d", "plot_latent_pca", "interpolation_with_probes", "ProbeArguments",
    "run_probes", "pick_interpolation_ends", "save_probes",
]
