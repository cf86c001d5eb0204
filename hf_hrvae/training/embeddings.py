"""Word2vec initialisation of the word embeddings, as in the paper ("512-dimensional word2vec embeddings").

The vectors are trained with gensim on the training split only, over the tokens the model sees (`<s>`, words or
`<unk>`, `</s>`), and cached in a safetensors file keyed by the vocabulary, the texts and the word2vec settings, so
a cached file is loaded without gensim (and without training again).
"""

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def default_cache_dir() -> Path:
    return Path(os.environ.get("HF_HRVAE_CACHE", Path.home() / ".cache" / "hf_hrvae")) / "word2vec"


@dataclass(frozen=True)
class Word2VecSettings:
    """gensim's `Word2Vec` settings (CBOW as in Mikolov et al. 2013; one worker, so the vectors are reproducible)."""

    vector_size: int = 512
    window: int = 5
    min_count: int = 1
    sg: int = 0
    epochs: int = 5
    seed: int = 0


def cache_key(tokenizer, texts, settings: Word2VecSettings) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode())
    digest.update(json.dumps(asdict(settings), sort_keys=True).encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\n")
    return digest.hexdigest()[:20]


def train_word2vec(token_lists: list[list[str]], settings: Word2VecSettings):
    try:
        from gensim.models import Word2Vec
    except ImportError as error:
        raise ImportError(
            "--init_embeddings word2vec needs gensim to train the vectors (pip install 'hf_hrvae[word2vec]'), "
            "or a cached file from an earlier run in --embeddings_cache_dir."
        ) from error
    return Word2Vec(sentences=token_lists, workers=1, **asdict(settings)).wv


def word2vec_vectors(tokenizer, texts, settings: Word2VecSettings = Word2VecSettings(), cache_dir=None):
    """`(vectors (V, vector_size) float32, found (V,) bool)` for the tokenizer's vocabulary; rows of tokens that never
    occur in `texts` (`<pad>`) are zero and not found. Loads the cached file when there is one."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"word2vec-{cache_key(tokenizer, texts, settings)}.safetensors"
    if path.exists():
        tensors = load_file(path)
        return tensors["vectors"], tensors["found"].bool()
    ids = tokenizer(list(texts))["input_ids"]
    tokens = [tokenizer.convert_ids_to_tokens(row) for row in ids]
    vectors_by_word = train_word2vec(tokens, settings)
    vocab = tokenizer.get_vocab()
    vectors = torch.zeros(len(tokenizer), settings.vector_size)
    found = torch.zeros(len(tokenizer), dtype=torch.bool)
    for word, index in vocab.items():
        if word in vectors_by_word.key_to_index:
            vectors[index] = torch.from_numpy(vectors_by_word[word].copy())
            found[index] = True
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file({"vectors": vectors.contiguous(), "found": found.to(torch.uint8)}, str(partial))
    os.replace(partial, path)
    return vectors, found


@torch.no_grad()
def initialise_embeddings(model, vectors: torch.Tensor, found: torch.Tensor) -> int:
    """Copy the found rows into every word-embedding table of `model` (encoder and decoder); other rows keep their
    initialisation. Returns the number of rows copied per table."""
    tables = [module for name, module in model.named_modules()
              if isinstance(module, torch.nn.Embedding) and name.endswith("embedding")]
    for table in tables:
        if table.weight.shape != vectors.shape:
            raise ValueError(f"word2vec vectors {tuple(vectors.shape)} do not match the embedding table "
                             f"{tuple(table.weight.shape)}: --embedding_size must equal the vector size.")
        table.weight[found] = vectors[found].to(table.weight)
    return int(found.sum())


__all__ = ["Word2VecSettings", "word2vec_vectors", "initialise_embeddings", "default_cache_dir"]
