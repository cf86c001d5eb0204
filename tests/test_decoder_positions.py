"""`HRVAEConfig.decoder_positions`: a learnt position embedding on the LSTM decoder's inputs (a labelled variant for
the inputless setting), the same in teacher forcing, greedy decoding and beam search, and addable to a saved model
without changing what it computes."""

import pytest
import torch
from transformers import AutoModel

from conftest import tiny_config
from hf_hrvae import HRVAEModel
from hf_hrvae.models.hrvae.decoders_hrvae import PositionEmbedding
from hf_hrvae.training import Trainer, TrainingArguments
from hf_hrvae.training.fine_tuning import with_decoder_positions
from test_generation import sequence_log_probs
from test_training import tiny_args


def with_random_positions(model, scale=3.0):
    """The model with position embeddings far from their zero start, so that positions change its outputs."""
    with torch.no_grad():
        model.decoder.position_embedding.weight.normal_(0, scale, generator=torch.Generator().manual_seed(5))
    return model


@pytest.mark.parametrize("setting", ["standard", "inputless"])
def test_generation_feeds_each_step_its_position(make_model, setting):
    model = with_random_positions(make_model(setting=setting, seed=3, decoder_positions=True)).eval()
    latent = 3 * torch.randn(6, model.config.latent_dim, generator=torch.Generator().manual_seed(1))
    out = model.generate(latent=latent, max_new_tokens=10, return_dict_in_generate=True, output_logits=True)
    torch.testing.assert_close(torch.stack(out.logits, dim=1), model.decode(latent, out.sequences),
                               atol=1e-5, rtol=1e-5)  # greedy step t sees position t, as teacher forcing does
    beams = model.generate(latent=latent, max_new_tokens=10, num_beams=3, length_penalty=0.0,
                           return_dict_in_generate=True)
    log_prob, _ = sequence_log_probs(model, latent, beams.sequences)
    torch.testing.assert_close(beams.sequences_scores, log_prob, atol=1e-4, rtol=0)  # and each beam step too
    with torch.no_grad():
        model.decoder.position_embedding.weight.zero_()
    assert not torch.equal(model.generate(latent=latent, max_new_tokens=10), out.sequences)  # positions mattered


def test_positions_start_at_zero_and_past_the_table_share_its_last_row():
    table = PositionEmbedding(4, 3)
    assert torch.equal(table.weight, torch.zeros(4, 3))
    with torch.no_grad():
        table.weight.copy_(torch.arange(12.0).view(4, 3))
    assert torch.equal(table(2, 4), table.weight[[2, 3, 3, 3]])


def test_a_saved_model_given_positions_computes_what_it_did_and_keeps_them(make_model, batch, tmp_path):
    model = make_model(setting="inputless", seed=2).eval()
    extended = with_decoder_positions(model, True).eval()
    assert extended.config.decoder_positions and not model.config.decoder_positions
    latent = torch.randn(6, model.config.latent_dim, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(extended.decode(latent, batch["input_ids"]), model.decode(latent, batch["input_ids"]))
    assert with_decoder_positions(model, None) is model and with_decoder_positions(extended, True) is extended
    with_random_positions(extended).save_pretrained(tmp_path / "saved")
    loaded = AutoModel.from_pretrained(tmp_path / "saved")
    assert loaded.config.decoder_positions
    assert torch.equal(loaded.decoder.position_embedding.weight, extended.decoder.position_embedding.weight)
    with pytest.raises(ValueError, match="cannot be removed"):
        with_decoder_positions(extended, False)


def test_decoder_positions_is_checked(tokenizer):
    with pytest.raises(ValueError, match="decoder_positions is built for the LSTM decoder"):
        tiny_config(len(tokenizer), decoder_positions=True, decoder_type="cnn")
    with pytest.raises(ValueError, match="decoder_positions must be True or False"):
        tiny_config(len(tokenizer), decoder_positions="yes")
    assert HRVAEModel(tiny_config(len(tokenizer))).decoder.position_embedding is None  # the paper's model


def test_training_from_a_saved_model_can_add_positions(e2e_folder, tmp_path):
    first = Trainer(tiny_args(e2e_folder, tmp_path / "first", setting="inputless", max_train_steps=1))
    first.run()
    warm = Trainer(tiny_args(e2e_folder, tmp_path / "warm", model_name_or_path=str(tmp_path / "first"),
                             embedding_size=None, hidden_size=None, decoder_positions=True, max_train_steps=3))
    warm.run()
    saved = AutoModel.from_pretrained(tmp_path / "warm")
    assert saved.config.decoder_positions and saved.decoder.position_embedding.weight.abs().sum() > 0  # learnt
    with pytest.raises(ValueError, match="leave out --embedding_size"):  # the other options still come from the folder
        TrainingArguments(**{**vars(tiny_args(e2e_folder, tmp_path / "x", hidden_size=None)),
                             "model_name_or_path": str(tmp_path / "first"), "decoder_positions": True})


def test_a_saved_model_trains_with_another_dropout_and_keeps_it(make_model, batch, e2e_folder, tmp_path):
    from hf_hrvae.training.fine_tuning import with_dropout

    model = make_model(setting="inputless", seed=2)
    latent = torch.randn(6, model.config.latent_dim, generator=torch.Generator().manual_seed(0))
    expected = model.eval().decode(latent, batch["input_ids"])
    with_dropout(model, 0.0).train()  # training mode without any dropout left: what eval mode computes
    torch.testing.assert_close(model.decode(latent, batch["input_ids"]), expected)
    with pytest.raises(ValueError, match="dropout must be a float in"):
        with_dropout(model, 1.5)
    assert model.config.dropout == 0.0
    first = Trainer(tiny_args(e2e_folder, tmp_path / "first", setting="inputless", max_train_steps=1))
    first.run()
    Trainer(tiny_args(e2e_folder, tmp_path / "warm", model_name_or_path=str(tmp_path / "first"),
                      embedding_size=None, hidden_size=None, dropout=0.1, max_train_steps=1)).run()
    assert AutoModel.from_pretrained(tmp_path / "warm").config.dropout == 0.1
