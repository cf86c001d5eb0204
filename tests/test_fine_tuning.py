"""Fine-tuning a saved model on new text: the vocabulary grows with the new words (or is kept), and the model
learns them."""

import json

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from hf_hrvae import HRVAEConfig, HRVAEModel, build_tokenizer
from hf_hrvae.training.fine_tuning import adapt_vocabulary
from hf_hrvae.tokenization_hrvae import extend_tokenizer, unk_share
from hf_hrvae.training import TrainingArguments, train
from test_own_data import SENTENCES, write_lines

# the new text: the old words plus two the model never saw ("sunny" 20 times, "terrace" 10 times)
NEW = [f"the sunny {place} cafe serves {food} food ." for place in ("river", "park", "station", "bridge", "market")
       for food in ("thai", "cheap")] * 2 + [f"a terrace near the {place} ." for place in ("river", "park")] * 5


def test_extend_tokenizer_appends_the_new_words_and_keeps_every_id(tmp_path):
    tokenizer = build_tokenizer(SENTENCES)
    assert unk_share(tokenizer, ["the sunny cafe ."]) == pytest.approx(1 / 4)
    extended, added = extend_tokenizer(tokenizer, NEW, min_frequency=11)
    assert added == ["sunny"]  # "terrace" is seen 10 times only
    extended, added = extend_tokenizer(tokenizer, NEW)
    assert added == ["sunny", "a", "terrace"]  # most frequent first (20, 10, 10; ties by spelling)
    old = tokenizer.get_vocab()
    assert {word: extended.get_vocab()[word] for word in old} == old
    assert [extended.convert_tokens_to_ids(word) for word in added] == list(range(len(old), len(old) + 3))
    assert unk_share(extended, NEW) == 0.0
    extended.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded("the sunny cafe .")["input_ids"] == extended("the sunny cafe .")["input_ids"]
    assert reloaded.decode(reloaded("The SUNNY cafe.")["input_ids"], skip_special_tokens=True) == "the sunny cafe ."
    assert extend_tokenizer(tokenizer, SENTENCES) == (tokenizer, [])


@torch.no_grad()
def test_resize_token_embeddings_starts_new_words_as_unk_and_keeps_the_rest(tmp_path):
    torch.manual_seed(0)
    model = HRVAEModel(HRVAEConfig(vocab_size=30, embedding_size=8, hidden_size=8, latent_size=4)).eval()
    batch = torch.tensor([[2, 5, 1, 7, 3]])  # <s> w <unk> w </s>
    before = model(batch).logits.log_softmax(-1)
    returned = model.resize_token_embeddings(33)
    assert model.config.vocab_size == 33 and returned is model.get_input_embeddings()
    assert model.encoder.enc_embedding.weight.shape[0] == model.decoder.dec_embedding.weight.shape[0] == 33
    new_words = torch.tensor([[2, 5, 31, 7, 3]])  # a new word reads as <unk> did
    torch.testing.assert_close(model.encode(new_words)[0], model.encode(batch)[0])
    after = model(batch).logits.log_softmax(-1)
    known = [i for i in range(30) if i != 1]
    torch.testing.assert_close(after[..., known], before[..., known])  # every known word's probability unchanged
    # <unk> and the three new words share <unk>'s old probability equally
    torch.testing.assert_close(after[..., [1, 30, 31, 32]].logsumexp(-1), before[..., 1])
    torch.testing.assert_close(after[..., 30], after[..., 1])
    with pytest.raises(ValueError, match="only grows"):
        model.resize_token_embeddings(20)
    model.save_pretrained(tmp_path)
    assert AutoModel.from_pretrained(tmp_path).decoder.output_projection.out_features == 33


def base_model(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path / "base"), train_file=str(write_lines(tmp_path / "old.txt",
                             SENTENCES)), validation_split_percentage=10, per_device_train_batch_size=8,
                             embedding_size=16, hidden_size=16, num_train_epochs=1, eval_generation_samples=0)
    train(args)
    return tmp_path / "base"


def fine_tune(tmp_path, base, name, **overrides):
    values = dict(output_dir=str(tmp_path / name), model_name_or_path=str(base), train_file=str(
        write_lines(tmp_path / "new.txt", NEW)), validation_split_percentage=10, per_device_train_batch_size=8,
        num_train_epochs=12, learning_rate=1e-2, eval_generation_samples=0, seed=1)
    values.update(overrides)
    return train(TrainingArguments(**values))


def test_a_fine_tuned_model_knows_a_new_word(tmp_path):
    base = base_model(tmp_path)
    results = fine_tune(tmp_path, base, "tuned")
    record = results["vocabulary"]
    assert record["vocabulary"] == "extended" and record["added_words"] == 3 and record["first_added"][0] == "sunny"
    assert record["unk_share_before"] > 0.1 and record["unk_share_after"] == 0.0
    assert json.loads((tmp_path / "tuned" / "train_results.json").read_text())["vocabulary"] == record
    model = AutoModel.from_pretrained(tmp_path / "tuned").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tuned")
    assert model.config.vocab_size == len(tokenizer) == len(AutoTokenizer.from_pretrained(base)) + 3
    batch = tokenizer(["the sunny park cafe serves thai food ."], return_tensors="pt")
    assert tokenizer.unk_token_id not in batch["input_ids"][0]
    output = tokenizer.decode(model.generate(**batch, max_new_tokens=12)[0], skip_special_tokens=True)
    assert "sunny" in output.split(), output


def test_keep_vocabulary_leaves_new_words_unknown_and_says_how_many(tmp_path):
    base = base_model(tmp_path)
    results = fine_tune(tmp_path, base, "kept", keep_vocabulary=True, num_train_epochs=1)
    record = results["vocabulary"]
    assert record["vocabulary"] == "kept" and record["added_words"] == 0
    assert record["unk_share_before"] == record["unk_share_after"] > 0.1
    assert AutoTokenizer.from_pretrained(tmp_path / "kept").get_vocab() == AutoTokenizer.from_pretrained(base).get_vocab()
    with pytest.raises(ValueError, match="--keep_vocabulary applies to --model_name_or_path"):
        TrainingArguments(output_dir="x", train_file="new.txt", keep_vocabulary=True)


def test_adapt_vocabulary_grows_tokenizer_and_model_together():
    tokenizer = build_tokenizer(SENTENCES)
    model = HRVAEModel(HRVAEConfig(vocab_size=len(tokenizer), embedding_size=8, hidden_size=8))
    tokenizer, record = adapt_vocabulary(model, tokenizer, NEW, min_frequency=11)
    assert len(tokenizer) == model.config.vocab_size and record["first_added"] == ["sunny"]
    assert 0 < record["unk_share_after"] < record["unk_share_before"]
