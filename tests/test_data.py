import csv
import json
import logging

import pytest
import torch

from hf_hrvae.training.data import (
    DatasetUnavailableError,
    EpochSampler,
    find_corpus,
    load_text_splits,
    padding_fraction,
    tokenize_splits,
    tokenizer_for,
)


def write_folder(root, name, rows_by_split, header=("text",)):
    folder = root / name
    folder.mkdir()
    for split, rows in rows_by_split.items():
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
            writer.writerow(header)
            writer.writerows(rows)
    return str(folder)


def test_known_corpora_by_short_name_hub_id_and_folder():
    assert find_corpus("ptb").text_column == "sentence"
    assert find_corpus("tuetschek/e2e_nlg").min_frequency == 4
    assert find_corpus("../shared/data/ptb_text_only").split_punctuation is False
    assert find_corpus("someone/other") is None


def test_unreachable_hub_says_how_to_use_a_local_copy():
    with pytest.raises(DatasetUnavailableError) as error:
        load_text_splits("e2e")  # HF_HUB_OFFLINE=1 in the tests
    message = str(error.value)
    assert "'tuetschek/e2e_nlg'" in message and "--dataset_name ../shared/data/e2e_nlg" in message


def test_blank_lines_are_dropped_and_counted(tmp_path, caplog):
    rows = {"train": [["a b"], [" "], ["   "], ["c d"]], "validation": [["a"]], "test": [["b"]]}
    folder = write_folder(tmp_path, "corpus", rows)
    with caplog.at_level(logging.WARNING, logger="hf_hrvae.training.data"):
        splits = load_text_splits(folder)
    assert splits["train"]["text"] == ["a b", "c d"]
    assert "train: dropped 2 blank lines of 4" in caplog.text


def test_text_column_errors(tmp_path):
    rows = {"train": [["x", "a b"]], "validation": [["x", "a"]], "test": [["x", "b"]]}
    folder = write_folder(tmp_path, "two_columns", rows, header=("mr", "ref"))
    with pytest.raises(ValueError, match="pass --text_column \\(one of \\['mr', 'ref'\\]\\)"):
        load_text_splits(folder)
    with pytest.raises(ValueError, match="--text_column 'sentence' is not a column"):
        load_text_splits(folder, text_column="sentence")
    assert load_text_splits(folder, text_column="ref")["train"]["text"] == ["a b"]
    empty = write_folder(tmp_path, "empty", {"train": [[" "], ["  "]], "validation": [["a"]], "test": [["b"]]})
    with pytest.raises(ValueError, match="of the train split of .* holds no text"):
        load_text_splits(empty)


def test_missing_split_is_named(tmp_path):
    folder = write_folder(tmp_path, "no_test", {"train": [["a"]], "validation": [["a"]]})
    with pytest.raises(ValueError, match="missing \\['test'\\]"):
        load_text_splits(folder)


def test_vocabulary_follows_the_corpus_conventions(tmp_path):
    ptb = write_folder(tmp_path, "ptb_text_only", {s: [["it 's <unk> N"], ["it 's"]] for s in ("train", "validation", "test")},
                       header=("sentence",))
    splits = load_text_splits(ptb)
    tokenizer = tokenizer_for(ptb, splits["train"]["text"])
    assert tokenizer.tokenize("it 's N") == ["it", "'s", "N"]  # no lower-casing, whitespace only
    assert tokenizer("<unk>")["input_ids"] == [2, 1, 3]
    e2e_vocab = tokenizer_for("e2e", ["Blue spice. Blue spice."] * 4).get_vocab()
    assert "blue" in e2e_vocab and "." in e2e_vocab
    assert "spice" not in tokenizer_for("e2e", ["Blue spice. Blue."] * 1 + ["blue"] * 3).get_vocab()  # frequency >= 4


def test_tokenized_splits_carry_length_and_index(tmp_path):
    folder = write_folder(tmp_path, "c", {s: [["a b"], ["a"]] for s in ("train", "validation", "test")})
    splits = load_text_splits(folder)
    data = tokenize_splits(splits, tokenizer_for(folder, splits["train"]["text"]))
    assert data["train"]["length"] == [4, 3] and data["train"]["index"] == [0, 1]


def test_tokenizing_the_splits_leaves_the_tokenizer_as_it_was(tmp_path):
    folder = write_folder(tmp_path, "c", {s: [["a b " * 100], ["a"]] for s in ("train", "validation", "test")})
    splits = load_text_splits(folder)
    tokenizer = tokenizer_for(folder, splits["train"]["text"])
    data = tokenize_splits(splits, tokenizer)
    assert data["train"]["length"][0] == tokenizer.model_max_length < 202  # the training data is truncated
    assert tokenizer.backend_tokenizer.truncation is None  # ... the tokenizer is not
    tokenizer.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "tokenizer.json").read_text())["truncation"] is None  # nor what it saves


def test_sorted_batch_order_is_the_authors_fixed_length_sorted_order():
    lengths = [5, 3, 9, 3, 1, 5]
    sampler = EpochSampler(lengths, batch_size=2, seed=5, sort_by_length=True)
    assert list(sampler) == [4, 1, 3, 0, 5, 2]  # shortest first; equal lengths in corpus order
    sampler.set_epoch(7)
    assert list(sampler) == [4, 1, 3, 0, 5, 2]  # the same every epoch
    with pytest.raises(ValueError, match="exclude each other"):
        EpochSampler(lengths, batch_size=2, seed=5, group_by_length=True, sort_by_length=True)


def test_epoch_sampler_is_a_function_of_seed_and_epoch():
    lengths = list(range(1, 101))
    sampler = EpochSampler(lengths, batch_size=10, seed=5)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(first) == sorted(second) == list(range(100)) and first != second
    sampler.set_epoch(0)
    assert list(sampler) == first
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 80, (2000,), generator=generator).tolist()
    shuffled = EpochSampler(lengths, batch_size=64, seed=5)
    grouped = EpochSampler(lengths, batch_size=64, seed=5, group_by_length=True)
    assert sorted(grouped) == list(range(2000))
    assert padding_fraction(lengths, 64, grouped) < padding_fraction(lengths, 64, shuffled) / 2
