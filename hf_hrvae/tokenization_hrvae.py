"""Word-level tokenizer for HR-VAE, built with the `tokenizers` library.

The result is a plain fast tokenizer (`TokenizersBackend`): it saves a `tokenizer.json` that loads with
`AutoTokenizer.from_pretrained` and needs no code of ours.
"""

import json
from collections import Counter
from collections.abc import Iterable, Iterator

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIAL_TOKENS = [PAD, UNK, BOS, EOS]  # ids 0, 1, 2, 3, as HRVAEConfig's defaults and the authors' code

# As the authors' code for E2E: runs of dots become one, and . , ! ? ; : ( ) " and the clitic 's stand alone.
PUNCTUATION = Regex(r"'s\b|[.,!?;:()\"]")


def build_tokenizer(
    texts: Iterable[str],
    min_frequency: int = 1,
    max_vocab_size: int | None = None,
    lowercase: bool = True,
    split_punctuation: bool = True,
    model_max_length: int = 128,
) -> PreTrainedTokenizerFast:
    """Build a word-level tokenizer from training sentences.

    Args:
        texts: the training sentences (only the training split, as in the paper).
        min_frequency: keep words seen at least this often (E2E in the paper: frequency > 3, i.e. 4).
        max_vocab_size: at most this many entries, the 4 special tokens included; `None`: no limit.
        lowercase: lower-case the text (E2E is raw text).
        split_punctuation: split `. , ! ? ; : ( ) "` and `'s` off words (E2E). Use `False` for PTB, which is already
            tokenised (`n't`, `'s` and `<unk>` are its words): it is then split on whitespace only.
        model_max_length: the tokenizer's maximum length, `<s>` and `</s>` included (match the model's
            `max_decode_length`).

    The texts' own `<unk>` (PTB) maps to our `<unk>`. Every encoding is `<s> w_1 ... w_n </s>`, right-padded with
    `<pad>`. Returns a `PreTrainedTokenizerFast` with `len(tokenizer)` entries: pass it as the config's `vocab_size`.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of sentences, not a single string.")
    if not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency must be a positive integer, got {min_frequency!r}.")
    if max_vocab_size is not None and (not isinstance(max_vocab_size, int) or max_vocab_size <= len(SPECIAL_TOKENS)):
        raise ValueError(
            f"max_vocab_size must be None or an integer > {len(SPECIAL_TOKENS)} (it counts the special tokens), "
            f"got {max_vocab_size!r}."
        )
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    steps = [normalizers.Lowercase()] if lowercase else []
    if split_punctuation:
        steps.append(normalizers.Replace(Regex(r"\.{2,}"), "."))
    if steps:
        tokenizer.normalizer = normalizers.Sequence(steps)
    splitters = [pre_tokenizers.WhitespaceSplit()]
    if split_punctuation:
        splitters.append(pre_tokenizers.Split(PUNCTUATION, behavior="isolated"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(splitters)
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    tokenizer.add_special_tokens(SPECIAL_TOKENS)

    trainer = trainers.WordLevelTrainer(
        vocab_size=max_vocab_size or 2**31 - 1,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    count = 0

    def counted(items):
        nonlocal count
        for text in items:
            if not isinstance(text, str):
                raise TypeError(f"texts must hold strings, got {type(text).__name__}: {text!r}.")
            count += 1
            # A corpus's own "<unk>" (PTB) is our special token, not a word: counted as one, `tokenizers` would
            # give the special token a second id.
            for token in SPECIAL_TOKENS:
                text = text.replace(token, " ")
            yield text

    tokenizer.train_from_iterator(counted(texts), trainer=trainer)
    if count == 0:
        raise ValueError("build_tokenizer got no texts: the vocabulary must be built from training sentences.")
    if tokenizer.get_vocab_size() <= len(SPECIAL_TOKENS):
        raise ValueError(
            f"No word of the {count} texts occurs at least min_frequency={min_frequency} times: the vocabulary "
            "would hold only the special tokens."
        )
    if [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS] != list(range(len(SPECIAL_TOKENS))):
        raise RuntimeError(f"Special tokens got unexpected ids: {[tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]}.")
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        special_tokens=[(token, tokenizer.token_to_id(token)) for token in (BOS, EOS)],
    )
    return _wrap(tokenizer, model_max_length)


def _wrap(tokenizer: Tokenizer, model_max_length: int) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        padding_side="right",
        model_max_length=model_max_length,
        model_input_names=["input_ids", "attention_mask"],
    )


def _words(tokenizer: PreTrainedTokenizerFast, texts: Iterable[str]) -> Iterator[str]:
    """The words of `texts` as the tokenizer splits them (its normalizer, then its pre-tokenizer)."""
    backend = tokenizer.backend_tokenizer
    for text in texts:
        for token in SPECIAL_TOKENS:
            text = text.replace(token, " ")
        if backend.normalizer is not None:
            text = backend.normalizer.normalize_str(text)
        yield from (word for word, _ in backend.pre_tokenizer.pre_tokenize_str(text))


def unk_share(tokenizer: PreTrainedTokenizerFast, texts: Iterable[str]) -> float:
    """The share of the words of `texts` that the tokenizer maps to `<unk>` (`<s>`, `</s>` not counted; a text's
    own `<unk>`, as PTB writes rare words, is not counted either)."""
    vocab = tokenizer.get_vocab()
    words = list(_words(tokenizer, texts))
    return sum(word not in vocab for word in words) / len(words) if words else 0.0


def extend_tokenizer(
    tokenizer: PreTrainedTokenizerFast, texts: Iterable[str], min_frequency: int = 1
) -> tuple[PreTrainedTokenizerFast, list[str]]:
    """The tokenizer with the words of `texts` it lacks (seen at least `min_frequency` times) appended to its
    vocabulary, most frequent first; the known words keep their ids. Returns the new tokenizer and the added words
    (none: the tokenizer itself). Grow the model with `model.resize_token_embeddings(len(new_tokenizer))`."""
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of sentences, not a single string.")
    if not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency must be a positive integer, got {min_frequency!r}.")
    vocab = tokenizer.get_vocab()
    counts = Counter(_words(tokenizer, texts))
    added = sorted((word for word, count in counts.items() if count >= min_frequency and word not in vocab),
                   key=lambda word: (-counts[word], word))
    if not added:
        return tokenizer, []
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    if state["model"]["type"] != "WordLevel":
        raise ValueError(f"extend_tokenizer extends word-level tokenizers (build_tokenizer's), got a "
                         f"{state['model']['type']} model.")
    start = max(vocab.values()) + 1
    state["model"]["vocab"].update({word: start + index for index, word in enumerate(added)})
    return _wrap(Tokenizer.from_str(json.dumps(state)), tokenizer.model_max_length), added


__all__ = ["build_tokenizer", "extend_tokenizer", "unk_share", "SPECIAL_TOKENS"]
