import builtins

import pytest
import torch

from hf_hrvae import HRVAEModel
from hf_hrvae.training.embeddings import Word2VecSettings, initialise_embeddings, word2vec_vectors
from test_training import tiny_args
from hf_hrvae.training import Trainer

SETTINGS = Word2VecSettings(vector_size=12, epochs=2)


def test_word2vec_vectors_cover_the_vocabulary_and_load_from_the_cache_without_gensim(tokenizer, sentences, tmp_path,
                                                                                     monkeypatch):
    vectors, found = word2vec_vectors(tokenizer, sentences, SETTINGS, tmp_path)
    assert vectors.shape == (len(tokenizer), 12) and vectors.dtype == torch.float32
    vocab = tokenizer.get_vocab()
    assert not found[vocab["<pad>"]] and vectors[vocab["<pad>"]].abs().sum() == 0  # never in a sentence
    assert found[vocab["<s>"]] and found[vocab["</s>"]]
    assert found.sum() >= len(tokenizer) - 2  # every word of the training texts (and <unk> when used)
    assert (vectors[found].norm(dim=1) > 0).all()
    assert len(list(tmp_path.glob("word2vec-*.safetensors"))) == 1

    real_import = builtins.__import__

    def no_gensim(name, *args, **kwargs):
        if name.startswith("gensim"):
            raise ImportError("gensim is not installed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gensim)
    cached, cached_found = word2vec_vectors(tokenizer, sentences, SETTINGS, tmp_path)
    assert torch.equal(cached, vectors) and torch.equal(cached_found, found)
    # other texts or settings are another cache entry, which needs gensim: the error says what to do
    with pytest.raises(ImportError, match="pip install 'hf_hrvae\\[word2vec\\]'"):
        word2vec_vectors(tokenizer, sentences[:-1], SETTINGS, tmp_path)


def test_initialise_embeddings_copies_found_rows_into_encoder_and_decoder(make_model):
    model = make_model(embedding_size=12)
    vectors = torch.randn(model.config.vocab_size, 12)
    found = torch.ones(model.config.vocab_size, dtype=torch.bool)
    found[0] = False
    before = model.encoder.enc_embedding.weight[0].clone()
    assert initialise_embeddings(model, vectors, found) == model.config.vocab_size - 1
    for table in (model.encoder.enc_embedding, model.decoder.dec_embedding):
        assert torch.equal(table.weight[1:], vectors[1:])
    assert torch.equal(model.encoder.enc_embedding.weight[0], before)
    with pytest.raises(ValueError, match="--embedding_size must equal the vector size"):
        initialise_embeddings(model, torch.randn(model.config.vocab_size, 7), found)


def test_training_with_init_embeddings_word2vec_starts_from_the_vectors(e2e_folder, tmp_path):
    trainer = Trainer(tiny_args(e2e_folder, tmp_path / "run", init_embeddings="word2vec",
                                embeddings_cache_dir=str(tmp_path / "cache")))
    trainer.setup()
    cached = list((tmp_path / "cache").glob("word2vec-*.safetensors"))
    assert len(cached) == 1
    from safetensors.torch import load_file

    tensors = load_file(cached[0])
    found = tensors["found"].bool()
    model: HRVAEModel = trainer.accelerator.unwrap_model(trainer.model)
    assert torch.equal(model.encoder.enc_embedding.weight[found], tensors["vectors"][found])
    assert torch.equal(model.decoder.dec_embedding.weight[found], tensors["vectors"][found])
