"""Shared fixtures. Nothing here touches the network: the Hub is off for the whole test session."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from hf_hrvae import HRVAEConfig, HRVAEModel, build_tokenizer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Used when ../shared/data is absent: a few E2E-like sentences.
FALLBACK_SENTENCES = [
    "Blue Spice is a coffee shop in city centre.",
    "Giraffe is a coffee shop found near The Bakers.",
    "A pub in the city centre area called Blue Spice.",
    "The Cricketers is a one star coffee shop near The Ranch that is not family friendly.",
    "Cocum is a pub with a high customer rating, located near Café Sicilia.",
    "The Eagle is a cheap coffee shop in the riverside area.",
    "Near The Bakers, Giraffe serves English food at a high price.",
    "The Vaults is a family friendly pub in the city centre.",
] * 4


def e2e_sentences(limit=400):
    path = SHARED_DATA / "e2e_nlg" / "train.csv"
    if path.exists():
        import csv

        with open(path, newline="", encoding="utf-8") as handle:
            rows = [row["human_reference"] for _, row in zip(range(limit), csv.DictReader(handle))]
        return rows
    return FALLBACK_SENTENCES


@pytest.fixture(scope="session")
def sentences():
    return e2e_sentences()


@pytest.fixture(scope="session")
def tokenizer(sentences):
    return build_tokenizer(sentences, min_frequency=2)


def tiny_config(vocab_size, **overrides):
    """A small model (the transformers "model tester" habit): fast, but every code path of the full one."""
    values = dict(vocab_size=vocab_size, embedding_size=12, hidden_size=8, num_layers=2, dropout=0.5)
    values.update(overrides)
    return HRVAEConfig(**values)


@pytest.fixture
def make_model(tokenizer):
    def make(seed=0, **overrides):
        torch.manual_seed(seed)
        return HRVAEModel(tiny_config(len(tokenizer), **overrides))

    return make


@pytest.fixture
def batch(tokenizer, sentences):
    return tokenizer(sentences[:6], return_tensors="pt", padding=True)


@pytest.fixture(scope="session")
def e2e_folder(tmp_path_factory):
    """../shared/data/e2e_nlg when present, else a tiny folder of the same layout built here."""
    shared = SHARED_DATA / "e2e_nlg"
    if shared.exists():
        return str(shared)
    import csv

    folder = tmp_path_factory.mktemp("data") / "e2e_nlg"
    folder.mkdir()
    for split, count in (("train", 256), ("validation", 64), ("test", 64)):
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["meaning_representation", "human_reference"])
            for row in range(count):
                writer.writerow(["name[x]", FALLBACK_SENTENCES[row % len(FALLBACK_SENTENCES)]])
    return str(folder)
