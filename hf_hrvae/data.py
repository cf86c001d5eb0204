"""Data for HR-VAE: load PTB / E2E (or any text dataset) with `datasets`, build the vocabulary, tokenize, batch."""

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import DatasetDict, load_dataset
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices

from .tokenization_hrvae import build_tokenizer

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Corpus:
    """What we know about a benchmark corpus: where it lives on the Hub and how its text is written."""

    hub_id: str
    text_column: str
    lowercase: bool
    split_punctuation: bool
    min_frequency: int
    folder_names: tuple[str, ...]
    revision: str = "refs/convert/parquet"  # datasets >= 4 loads these script-free conversions


KNOWN_CORPORA = {
    # Mikolov's PTB: already lower-cased and tokenised, rare words are <unk>, 10k words: keep them all.
    "ptb": Corpus("ptb-text-only/ptb_text_only", "sentence", False, False, 1, ("ptb_text_only", "ptb")),
    # E2E: raw text; the paper indexes words with frequency > 3.
    "e2e": Corpus("tuetschek/e2e_nlg", "human_reference", True, True, 4, ("e2e_nlg", "e2e")),
}


class DatasetUnavailableError(RuntimeError):
    """The dataset could not be loaded (typically: the Hub is unreachable and no local copy was given)."""


def find_corpus(dataset_name: str) -> Corpus | None:
    """The known corpus a `--dataset_name` refers to (short name, Hub id or local folder name), if any."""
    if dataset_name in KNOWN_CORPORA:
        return KNOWN_CORPORA[dataset_name]
    folder = Path(dataset_name).name
    for corpus in KNOWN_CORPORA.values():
        if dataset_name == corpus.hub_id or folder in corpus.folder_names:
            return corpus
    return None


def load_raw_dataset(dataset_name: str) -> DatasetDict:
    """`load_dataset` for a local folder (train/validation/test files) or a Hub id; a clear error when unreachable."""
    if Path(dataset_name).is_dir():
        return load_dataset(str(dataset_name))
    corpus = KNOWN_CORPORA.get(dataset_name)
    hub_id, revision = (corpus.hub_id, corpus.revision) if corpus else (dataset_name, None)
    try:
        return load_dataset(hub_id, revision=revision)
    except Exception as error:  # datasets raises ConnectionError, FileNotFoundError, ... depending on the case
        raise DatasetUnavailableError(
            f"Could not load the dataset {hub_id!r} from the Hugging Face Hub ({type(error).__name__}: {error}). "
            f"'{dataset_name}' is not a local folder either. If the Hub is unreachable (offline machine, "
            "HF_HUB_OFFLINE=1), point --dataset_name at a local copy: a folder with train/validation/test files, "
            "e.g. --dataset_name ../shared/data/e2e_nlg or ../shared/data/ptb_text_only."
        ) from error


def choose_text_column(dataset_name: str, columns: list[str], text_column: str | None) -> str:
    if text_column is not None:
        if text_column not in columns:
            raise ValueError(f"--text_column {text_column!r} is not a column of {dataset_name!r}; columns: {columns}.")
        return text_column
    corpus = find_corpus(dataset_name)
    for candidate in ([corpus.text_column] if corpus else []) + ["text", "sentence"]:
        if candidate in columns:
            return candidate
    if len(columns) == 1:
        return columns[0]
    raise ValueError(f"Cannot tell which column of {dataset_name!r} holds the text; pass --text_column (one of {columns}).")


def load_text_splits(
    dataset_name: str,
    text_column: str | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
) -> DatasetDict:
    """The train/validation/test splits with one column, `text`: stripped, blank lines dropped (and counted)."""
    raw = load_raw_dataset(dataset_name)
    missing = [split for split in SPLITS if split not in raw]
    if missing:
        raise ValueError(f"{dataset_name!r} has splits {list(raw)}; missing {missing} (need {list(SPLITS)}).")
    column = choose_text_column(dataset_name, raw["train"].column_names, text_column)
    splits = DatasetDict()
    for split in SPLITS:
        data = raw[split]
        limit = max_train_samples if split == "train" else max_eval_samples
        if limit is not None:
            data = data.select(range(min(limit, len(data))))
        data = data.map(
            lambda batch: {"text": [(text or "").strip() for text in batch[column]]},
            batched=True,
            remove_columns=data.column_names,
        )
        kept = data.filter(lambda batch: [bool(text) for text in batch["text"]], batched=True)
        if len(kept) < len(data):
            logger.warning(f"{split}: dropped {len(data) - len(kept)} blank lines of {len(data)} in column {column!r}.")
        if len(kept) == 0:
            raise ValueError(f"Column {column!r} of the {split} split of {dataset_name!r} holds no text.")
        splits[split] = kept
    return splits


def tokenizer_for(dataset_name: str, train_texts, min_frequency: int | None = None, max_vocab_size=None, **kwargs):
    """The vocabulary from the training split only, with the corpus's own conventions (see `KNOWN_CORPORA`)."""
    corpus = find_corpus(dataset_name)
    options = dict(lowercase=True, split_punctuation=True, min_frequency=1)
    if corpus:
        options = dict(
            lowercase=corpus.lowercase, split_punctuation=corpus.split_punctuation, min_frequency=corpus.min_frequency
        )
    if min_frequency is not None:
        options["min_frequency"] = min_frequency
    return build_tokenizer(train_texts, max_vocab_size=max_vocab_size, **options, **kwargs)


def tokenize_splits(splits: DatasetDict, tokenizer) -> DatasetDict:
    """Add `input_ids`, `length` and `index` (the row number, which seeds per-sentence evaluation noise)."""

    def encode(batch, indices):
        encoded = tokenizer(batch["text"], truncation=True)
        return {
            "input_ids": encoded["input_ids"],
            "length": [len(ids) for ids in encoded["input_ids"]],
            "index": indices,
        }

    return splits.map(encode, batched=True, with_indices=True, remove_columns=["text"])


class EpochSampler(Sampler):
    """A shuffle that depends only on (seed, epoch), so a resumed run replays the same order.

    With `group_by_length`, transformers' `get_length_grouped_indices` puts sentences of similar length together
    (mega-batches of 50 batches sorted by length) to cut padding. With `sort_by_length`, the authors' order: the
    corpus sorted by length (ties in corpus order), the same every epoch, shortest first, so the batches are its
    consecutive slices.
    """

    def __init__(self, lengths, batch_size: int, seed: int, group_by_length: bool = False, shuffle: bool = True,
                 sort_by_length: bool = False):
        if sort_by_length and group_by_length:
            raise ValueError("sort_by_length (the authors' fixed order) and group_by_length exclude each other.")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.shuffle = shuffle
        self.sort_by_length = sort_by_length
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        if self.sort_by_length:  # sorted() is stable: equal lengths keep the corpus order
            return iter(sorted(range(len(self.lengths)), key=self.lengths.__getitem__))
        if not self.shuffle:
            return iter(range(len(self.lengths)))
        generator = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        if self.group_by_length:
            return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))
        return iter(torch.randperm(len(self.lengths), generator=generator).tolist())


def padding_fraction(lengths, batch_size: int, order) -> float:
    """Fraction of padded positions when `order` is cut into batches of `batch_size` (for the log)."""
    order = list(order)
    padded = real = 0
    for start in range(0, len(order), batch_size):
        chunk = [lengths[i] for i in order[start : start + batch_size]]
        padded += max(chunk) * len(chunk)
        real += sum(chunk)
    return 1 - real / padded if padded else 0.0


__all__ = [
    "KNOWN_CORPORA",
    "DatasetUnavailableError",
    "find_corpus",
    "load_raw_dataset",
    "load_text_splits",
    "tokenizer_for",
    "tokenize_splits",
    "EpochSampler",
    "padding_fraction",
]
