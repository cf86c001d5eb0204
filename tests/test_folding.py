"""`training.folding.fold_inputless_embedding` (`export_checkpoint.py --fold_inputless`): an inputless model with its
decoder embedding folded into the first layer computes what it did, with fewer weights, and saves and loads so."""

import pytest
import torch
from transformers import AutoModel

from hf_hrvae.training import Trainer
from hf_hrvae.training.folding import fold_inputless_embedding
from test_training import tiny_args


@pytest.mark.parametrize("overrides", [dict(), dict(num_layers=3, latent_size=6)])
def test_a_folded_model_computes_what_it_did(make_model, batch, overrides):
    model = make_model(seed=3, setting="inputless", **overrides).eval()
    with torch.no_grad():  # a trained model's <s> and <unk> rows differ; make sure these do
        model.decoder.dec_embedding.weight.normal_(0, 1.0)
    folded = fold_inputless_embedding(model)
    config = model.config
    assert folded.config.decoder_embedding_size == 1 and model.config.decoder_embedding_size is None
    assert not folded.training
    # the table loses E - 1 columns, and the first layer E - 1 input columns of its 4H gate rows
    assert model.num_parameters() - folded.num_parameters() == (config.vocab_size + 4 * config.hidden_size) * (config.embedding_size - 1)
    out, folded_out = (m(**batch, labels=batch["input_ids"]) for m in (model, folded))
    for name in ("loss", "reconstruction_loss", "kl_loss", "kl_last"):
        torch.testing.assert_close(getattr(folded_out, name), getattr(out, name))
    latent = torch.randn(6, config.latent_dim, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(folded.decode(latent, batch["input_ids"]), model.decode(latent, batch["input_ids"]))
    assert torch.equal(folded.generate(**batch, max_new_tokens=8), model.generate(**batch, max_new_tokens=8))
    beams = dict(num_beams=3, max_new_tokens=8)
    assert torch.equal(folded.generate(**batch, **beams), model.generate(**batch, **beams))
    assert fold_inputless_embedding(folded) is folded  # already folded


def test_folding_is_refused_where_the_decoder_reads_more_than_two_inputs(make_model):
    for overrides in (dict(setting="standard"), dict(setting="inputless", decoder_type="cnn"),
                      dict(setting="inputless", decoder_positions=True)):
        with pytest.raises(ValueError, match="folds an inputless model's LSTM decoder"):
            fold_inputless_embedding(make_model(seed=1, **overrides))


def test_a_checkpoint_exports_folded_and_loads_as_folded(e2e_folder, tmp_path):
    from hf_hrvae.hub import build_model_card
    from hf_hrvae.training.checkpoints import export_checkpoint

    out = tmp_path / "run"
    Trainer(tiny_args(e2e_folder, out, num_train_epochs=1, checkpointing_steps="epoch", setting="inputless")).run()
    full, small = tmp_path / "full", tmp_path / "folded"
    export_checkpoint(out, out / "checkpoints" / "step_6", full, reason="as trained")
    results = export_checkpoint(out, out / "checkpoints" / "step_6", small, reason="folded", fold_inputless=True)
    assert results["folded_inputless_embedding"] is True
    reference, model = AutoModel.from_pretrained(full).eval(), AutoModel.from_pretrained(small).eval()
    assert model.config.decoder_embedding_size == 1 and model.num_parameters() < reference.num_parameters()
    size = lambda folder: (folder / "model.safetensors").stat().st_size
    assert size(small) < size(full)
    with torch.no_grad():
        latent = torch.randn(3, reference.config.latent_dim, generator=torch.Generator().manual_seed(0))
        assert torch.equal(model.generate(latent=latent, max_new_tokens=10),
                           reference.generate(latent=latent, max_new_tokens=10))
    assert "input embedding is folded into its first layer" in str(build_model_card(small))
    assert "folded" not in str(build_model_card(full))
