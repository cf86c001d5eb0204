import pytest
from transformers import AutoTokenizer

from hf_hrvae import build_tokenizer

PTB_LINES = [
    "pierre <unk> N years old will join the board as a nonexecutive director nov. N",
    "mr. <unk> is chairman of <unk> n.v. the dutch publishing group",
    "it does n't matter what 's said",
]


def test_special_tokens_have_the_configs_ids(tokenizer):
    assert tokenizer.convert_tokens_to_ids(["<pad>", "<unk>", "<s>", "</s>"]) == [0, 1, 2, 3]
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2, 3)


def test_e2e_text_is_lowercased_and_punctuation_split():
    tok = build_tokenizer(["Blue Spice is a coffee shop. It's cheap, near Café Sicilia!"] * 2)
    assert tok.tokenize("Blue Spice is a coffee shop... It's cheap, near Café Sicilia!") == [
        "blue", "spice", "is", "a", "coffee", "shop", ".", "it", "'s", "cheap", ",", "near", "café", "sicilia", "!",
    ]


def test_encoding_adds_bos_eos_and_pads_right(tokenizer):
    batch = tokenizer(["blue spice .", "a coffee shop in the city centre ."], padding=True)
    first, second = batch["input_ids"]
    assert first[0] == 2 and first[4] == 3 and first[5:] == [0] * (len(first) - 5)
    assert second[0] == 2 and second[-1] == 3
    assert batch["attention_mask"][0] == [1] * 5 + [0] * (len(first) - 5)
    assert set(batch) == {"input_ids", "attention_mask"}


def test_ptb_splits_on_whitespace_only_and_maps_its_unk_to_ours():
    tok = build_tokenizer(PTB_LINES, lowercase=False, split_punctuation=False)
    assert tok.tokenize(PTB_LINES[2]) == ["it", "does", "n't", "matter", "what", "'s", "said"]
    assert "n.v." in tok.get_vocab() and "mr." in tok.get_vocab()
    ids = tok("mr. <unk> is chairman")["input_ids"]
    assert ids[2] == tok.unk_token_id == 1
    assert sum(1 for token in tok.get_vocab() if "unk" in token) == 1  # no second, corpus-made <unk> word


def test_min_frequency_keeps_words_seen_at_least_that_often():
    texts = ["apple"] * 4 + ["pear"] * 3 + ["fig"] * 5
    vocab = build_tokenizer(texts, min_frequency=4).get_vocab()
    assert "apple" in vocab and "fig" in vocab and "pear" not in vocab  # the paper's "frequency higher than 3"


def test_max_vocab_size_counts_special_tokens_and_keeps_frequent_words():
    texts = ["a a a a b b b c c d"]
    tok = build_tokenizer(texts, max_vocab_size=6)
    assert len(tok) == 6
    assert {"a", "b"} <= set(tok.get_vocab()) and "d" not in tok.get_vocab()


def test_vocabulary_is_deterministic(sentences):
    assert build_tokenizer(sentences).get_vocab() == build_tokenizer(sentences).get_vocab()


def test_decode_is_readable(tokenizer):
    ids = tokenizer("Blue Spice is a coffee shop in city centre.")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "blue spice is a coffee shop in city centre ."


def test_save_and_load_with_auto_tokenizer(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = ["Blue Spice is a coffee shop.", "Unseenword here"]
    assert loaded(text, padding=True)["input_ids"] == tokenizer(text, padding=True)["input_ids"]
    assert loaded.padding_side == "right" and len(loaded) == len(tokenizer)


def test_empty_string_and_unknown_words(tokenizer):
    assert tokenizer("")["input_ids"] == [2, 3]
    assert tokenizer("zzqx qqzx")["input_ids"] == [2, 1, 1, 3]


@pytest.mark.parametrize(
    "texts, kwargs, error, message",
    [
        ([], {}, ValueError, "got no texts"),
        ("one string", {}, TypeError, "not a single string"),
        (["a", 3], {}, TypeError, "texts must hold strings"),
        (["a b"], dict(min_frequency=0), ValueError, "min_frequency must be a positive integer"),
        (["a b"], dict(max_vocab_size=4), ValueError, "max_vocab_size must be None or an integer > 4"),
        (["a b"], dict(min_frequency=5), ValueError, "only the special tokens"),
    ],
)
def test_bad_arguments(texts, kwargs, error, message):
    with pytest.raises(error, match=message):
        build_tokenizer(texts, **kwargs)
