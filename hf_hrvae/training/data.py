"""Data for HR-VAE: load PTB / E2E (or any text dataset) with `datasets`, build the vocabulary, tokenize, batch."""

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import DatasetDict, load_dataset
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices

from ..errors import DataError, DatasetUnavailableError
from ..tokenization_hrvae import build_tokenizer

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


# `datasets`' builder for each kind of file `--train_file` and the others accept
FILE_BUILDERS = {".txt": "text", ".csv": "csv", ".json": "json", ".jsonl": "json"}


def find_corpus(dataset_name: str) -> Corpus | None:
    """The known corpus a `--dataset_name` refers to (short name, Hub id or local folder name), if any."""
    if dataset_name in KNOWN_CORPORA:
        return KNOWN_CORPORA[dataset_name]
    folder = Path(dataset_name).name
    for corpus in KNOWN_CORPORA.values():
        if dataset_name == corpus.hub_id or folder in corpus.folder_names:
            return corpus
    return None


def load_data_files(data_files: dict) -> DatasetDict:
    """`{split: path}` of .txt (one sentence a line), .csv or .json/.jsonl files as a `DatasetDict`."""
    kinds = set()
    for split, path in data_files.items():
        path = Path(path)
        if not path.is_file():
            raise DataError(f"--{split}_file {path}: no such file.")
        if path.suffix.lower() not in FILE_BUILDERS:
            raise DataError(f"--{split}_file {path}: unknown kind of file {path.suffix!r}; give .txt (one sentence a "
                            "line), .csv or .json/.jsonl (with --text_column naming the text's column).")
        if path.stat().st_size == 0:
            raise DataError(f"--{split}_file {path} is empty.")
        kinds.add(FILE_BUILDERS[path.suffix.lower()])
    if len(kinds) > 1:
        raise DataError(f"The data files are of different kinds ({sorted(kinds)}): give them all as .txt, .csv or "
                        ".json/.jsonl.")
    return load_dataset(kinds.pop(), data_files={split: str(path) for split, path in data_files.items()})


def load_raw_dataset(dataset_name: str) -> DatasetDict:
    """`load_dataset` for a local folder (train/validation/test files), a local file (its train split) or a Hub id;
    a clear error when unreachable."""
    if Path(dataset_name).is_dir():
        if not any(Path(dataset_name).iterdir()):
            raise DataError(f"--dataset_name {dataset_name}: the folder is empty.")
        try:
            return load_dataset(str(dataset_name))
        except Exception as error:  # no data file datasets recognises, unreadable files ...
            raise DataError(f"--dataset_name {dataset_name}: `datasets` cannot load this folder "
                            f"({type(error).__name__}: {error}). It loads files named train/validation/test "
                            f"(.txt, .csv, .json, .jsonl, .parquet); or give --train_file.") from error
    if Path(dataset_name).is_file():  # `--dataset_name sentences.txt`: what --train_file means
        logger.info(f"--dataset_name {dataset_name} is a file: it is used as --train_file.")
        return load_data_files({"train": dataset_name})
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
            raise DataError(f"--text_column {text_column!r} is not a column of {dataset_name!r}; columns: {columns}.")
        return text_column
    corpus = find_corpus(dataset_name)
    for candidate in ([corpus.text_column] if corpus else []) + ["text", "sentence"]:
        if candidate in columns:
            return candidate
    if len(columns) == 1:
        return columns[0]
    raise DataError(f"Cannot tell which column of {dataset_name!r} holds the text; pass --text_column (one of "
                    f"{columns}).")


def load_text_splits(
    dataset_name: str | None,
    text_column: str | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    data_files: dict | None = None,
    validation_split_percentage: float | None = None,
    required: tuple[str, ...] = SPLITS,
    seed: int = 42,
) -> DatasetDict:
    """The splits with one column, `text`: stripped, blank lines dropped (and counted).

    The data: `dataset_name` (a known corpus, a Hub id, a local folder or file) or `data_files` (`{split: path}`).
    `required`: the splits the caller needs; with `validation_split_percentage`, a missing validation split is
    that share of the training split (seeded by `seed`). A split that is not required and absent is left out.
    """
    if data_files:
        raw = load_data_files(data_files)
        dataset_name = str(data_files.get("train") or next(iter(data_files.values())))
    else:
        raw = load_raw_dataset(dataset_name)
    hold_out = "validation" not in raw and "train" in raw and "validation" in required and validation_split_percentage
    missing = [split for split in required if split not in raw and not (split == "validation" and hold_out)]
    if missing:
        flags = " ".join(f"--{split}_file" for split in missing)
        raise DataError(f"{dataset_name!r} has splits {list(raw)}; missing {missing}: put {' and '.join(missing)}"
                        f" files (.txt, .csv, .jsonl) in the folder, or give {flags} (train.py) or the file itself "
                        "as --dataset_name (evaluate.py).")
    present = [split for split in SPLITS if split in raw]
    column = choose_text_column(dataset_name, raw[present[0]].column_names, text_column)
    splits = DatasetDict()
    for split in present:
        data = raw[split].map(
            lambda batch: {"text": [(text or "").strip() for text in batch[column]]},
            batched=True,
            remove_columns=raw[split].column_names,
        )
        kept = data.filter(lambda batch: [bool(text) for text in batch["text"]], batched=True)
        if len(kept) < len(data):
            logger.warning(f"{split}: dropped {len(data) - len(kept)} blank lines of {len(data)} in column {column!r}.")
        if len(kept) == 0:
            raise DataError(f"Column {column!r} of the {split} split of {dataset_name!r} holds no text (empty or "
                            "blank lines only).")
        splits[split] = kept
    if hold_out:
        if not 0 < validation_split_percentage < 100:
            raise DataError(f"--validation_split_percentage must be in (0, 100), got {validation_split_percentage}.")
        count = len(splits["train"])
        held = round(count * validation_split_percentage / 100)
        if held < 1 or held >= count:
            raise DataError(f"The training data has {count} sentence(s): too few to hold out "
                            f"{validation_split_percentage:g} % as validation; give --validation_file or more text.")
        parts = splits["train"].train_test_split(test_size=held, seed=seed)
        splits["train"], splits["validation"] = parts["train"], parts["test"]
        logger.info(f"No validation split: {held} of the {count} training sentences ({validation_split_percentage:g} "
                    f"%) are held out as validation (seed {seed}).")
    for split in list(splits):
        limit = max_train_samples if split == "train" else max_eval_samples
        if limit is not None:
            splits[split] = splits[split].select(range(min(limit, len(splits[split]))))
    return DatasetDict({split: splits[split] for split in SPLITS if split in splits})


def default_min_frequency(dataset_name: str | None) -> int:
    """The vocabulary's min frequency for a corpus: its own convention (E2E: 4), 1 for any other data."""
    corpus = find_corpus(dataset_name) if dataset_name else None
    return corpus.min_frequency if corpus else 1


def tokenizer_for(dataset_name: str | None, train_texts, min_frequency: int | None = None, max_vocab_size=None, **kwargs):
    """The vocabulary from the training split only, with the corpus's own conventions (see `KNOWN_CORPORA`)."""
    corpus = find_corpus(dataset_name) if dataset_name else None
    options = dict(lowercase=True, split_punctuation=True, min_frequency=1)
    if corpus:
        options = dict(
            lowercase=corpus.lowercase, split_punctuation=corpus.split_punctuation, min_frequency=corpus.min_frequency
        )
    if min_frequency is not None:
        options["min_frequency"] = min_frequency
    return build_tokenizer(train_texts, max_vocab_size=max_vocab_size, **options, **kwargs)


def tokenize_splits(splits: DatasetDict, tokenizer) -> DatasetDict:
    """Add `input_ids`, `length` and `index` (the row number, which seeds per-sentence evaluation noise). Sentences
    over the tokenizer's `model_max_length` are truncated; the tokenizer is left as it was (a fast tokenizer keeps
    `truncation=True` as its backend's state, which `save_pretrained` would write into `tokenizer.json`)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state = backend.truncation if backend is not None else None

    def encode(batch, indices):
        encoded = tokenizer(batch["text"], truncation=True)
        return {
            "input_ids": encoded["input_ids"],
            "length": [len(ids) for ids in encoded["input_ids"]],
            "index": indices,
        }

    try:
        return splits.map(encode, batched=True, with_indices=True, remove_columns=["text"])
    finally:
        if backend is not None:
            backend.no_truncation() if state is None else backend.enable_truncation(**state)


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
    "DataError",
    "load_data_files",
    "find_corpus",
    "load_raw_dataset",
    "load_text_splits",
    "default_min_frequency",
    "tokenizer_for",
    "tokenize_splits",
    "EpochSampler",
    "padding_fraction",
]
