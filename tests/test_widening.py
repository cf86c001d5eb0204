"""`training.widening.with_hidden_size` (`train.py --model_name_or_path FOLDER --hidden_size N`): a saved model with
more hidden units computes exactly what it did, and its new units learn."""

import pytest
import torch
from transformers import AutoModel

from hf_hrvae.hub import departures
from hf_hrvae.training import Trainer
from hf_hrvae.training.widening import with_hidden_size
from test_training import tiny_args

WIDER = 13  # from the tiny config's 8


def old_part(wide: torch.Tensor, model, blocks: int) -> torch.Tensor:
    """The entries of a wide `[block_1; ...]` layout (last dim) that the narrow model's layout holds."""
    old, new = model.config.hidden_size, wide.shape[-1] // blocks
    return torch.cat([wide[..., b * new: b * new + old] for b in range(blocks)], dim=-1)


@pytest.mark.parametrize("overrides", [dict(setting="inputless"), dict(setting="standard", num_layers=3),
                                       dict(setting="inputless", decoder_positions=True),
                                       dict(setting="inputless", decoder_embedding_size=1)])  # a folded model
def test_a_widened_model_computes_what_it_did(make_model, batch, overrides):
    model = make_model(seed=4, **overrides).eval()
    if model.config.decoder_positions:
        with torch.no_grad():
            model.decoder.position_embedding.weight.normal_(0, 1.0)
    wide = with_hidden_size(model, WIDER).eval()
    layers = model.config.num_layers
    assert wide.config.hidden_size == WIDER and wide.config.latent_dim == 2 * layers * WIDER
    assert model.config.hidden_size == 8  # the saved model is left as it was

    mu, logvar = model.encode(batch["input_ids"], batch["attention_mask"])
    wide_mu, wide_logvar = wide.encode(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(old_part(wide_mu, model, 2 * layers), mu)
    torch.testing.assert_close(old_part(wide_logvar, model, 2 * layers), logvar)
    new_dims = torch.ones(wide.config.latent_dim, dtype=torch.bool)
    new_dims[torch.cat([torch.arange(8) + b * WIDER for b in range(2 * layers)])] = False
    assert torch.equal(wide_mu[:, new_dims], torch.zeros_like(wide_mu[:, new_dims]))  # q = N(0, 1) = the prior:
    assert torch.equal(wide_logvar[:, new_dims], torch.zeros_like(wide_logvar[:, new_dims]))  # their KL is 0

    latent = torch.randn(6, model.config.latent_dim, generator=torch.Generator().manual_seed(0))
    wide_latent = 5 * torch.randn(6, wide.config.latent_dim, generator=torch.Generator().manual_seed(1))
    wide_latent[:, ~new_dims] = latent  # whatever the new dims hold, the old units do not read them
    torch.testing.assert_close(wide.decode(wide_latent, batch["input_ids"]), model.decode(latent, batch["input_ids"]))
    out, wide_out = (m(**batch, labels=batch["input_ids"]) for m in (model, wide))
    torch.testing.assert_close(wide_out.loss, out.loss)
    for name in ("reconstruction_loss", "kl_loss", "kl_last"):  # the KL of the new dims is 0
        torch.testing.assert_close(getattr(wide_out, name), getattr(out, name))
    assert torch.equal(wide.generate(**batch, max_new_tokens=8), model.generate(**batch, max_new_tokens=8))


def test_the_new_units_learn(make_model, batch):
    model = make_model(seed=4, setting="inputless", dropout=0.0)
    wide = with_hidden_size(model, WIDER).train()
    wide(**batch, labels=batch["input_ids"]).loss.backward()
    grad = wide.decoder.output_projection.weight.grad
    assert torch.equal(wide.decoder.output_projection.weight[:, 8:], torch.zeros_like(grad[:, 8:]))  # read by none
    assert grad[:, 8:].abs().sum() > 0  # ... but about to be: the new units' activations give them a gradient
    old_rows = torch.cat([torch.arange(8) + b * WIDER for b in range(4)])
    assert wide.encoder.to_mu.weight.grad[old_rows][:, 8:WIDER].abs().sum() > 0  # the encoder's new units too


def test_widening_is_refused_where_it_cannot_keep_the_function(make_model):
    model = make_model(seed=1)
    assert with_hidden_size(model, None) is model and with_hidden_size(model, 8) is model
    with pytest.raises(ValueError, match="widened, not narrowed"):
        with_hidden_size(model, 4)
    for overrides in (dict(decoder_type="cnn"), dict(latent_size=6), dict(bn_vae=True)):
        with pytest.raises(ValueError, match="LSTM decoder whose z is its initial state"):
            with_hidden_size(make_model(seed=1, **overrides), WIDER)


def test_train_widens_a_saved_model_and_says_so(e2e_folder, tmp_path):
    Trainer(tiny_args(e2e_folder, tmp_path / "first", setting="inputless", max_train_steps=1)).run()
    Trainer(tiny_args(e2e_folder, tmp_path / "wide", model_name_or_path=str(tmp_path / "first"),
                      embedding_size=None, hidden_size=24, max_train_steps=2)).run()
    saved = AutoModel.from_pretrained(tmp_path / "wide")
    assert saved.config.hidden_size == 24 and saved.config.latent_dim == 96
    assert "24 hidden units per LSTM layer (the paper: 256)" in departures(saved.config.to_dict())
