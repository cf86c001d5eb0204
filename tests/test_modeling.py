import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from hf_hrvae.paper.benchmarking import count_host_syncs
from hf_hrvae.paper.naive import NaiveHRVAE
from hf_hrvae.models.hrvae.configuration_hrvae import PRESETS
from hf_hrvae.models.hrvae.modeling_hrvae import masked_mean, real_positions
from hf_hrvae.models.hrvae.recurrence_hrvae import forced_lstm_path, linear_recurrence
from hf_hrvae.training.utils import cpu_runs_bf16_lstm


def per_step_reference(model, input_ids):
    """The encoder one step at a time (`NaiveHRVAE.encode`: per-step `nn.LSTM` calls, as the paper describes it)."""
    return NaiveHRVAE(model).encode(input_ids)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_fused_encoder_equals_per_step_reference(make_model, batch, num_layers):
    model = make_model(num_layers=num_layers).eval()
    with torch.no_grad():
        mu, logvar = model.encoder.posterior(model.encoder(batch["input_ids"]))
        mu_ref, logvar_ref = per_step_reference(model, batch["input_ids"])
    assert mu.shape == (batch["input_ids"].shape[0], batch["input_ids"].shape[1], 2 * num_layers * 8)
    torch.testing.assert_close(mu, mu_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(logvar, logvar_ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("setting", ["standard", "inputless"])
def test_the_model_computes_the_naive_loss(make_model, batch, setting):
    model = make_model(setting=setting).eval()
    expected = NaiveHRVAE(model).eval()(batch["input_ids"], batch["attention_mask"])
    for stepwise in (True, False):
        with forced_lstm_path(stepwise):
            loss = model(**batch, labels=batch["input_ids"]).loss
        torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)


def test_linear_recurrence_equals_sequential_loop():
    torch.manual_seed(0)
    for length in (1, 2, 5, 16, 37):
        decay, drive = torch.rand(3, length, 4), torch.randn(3, length, 4)
        expected, c = [], torch.zeros(3, 4)
        for t in range(length):
            c = decay[:, t] * c + drive[:, t]
            expected.append(c)
        torch.testing.assert_close(linear_recurrence(decay, drive), torch.stack(expected, 1))


def test_encoder_gradient_equals_per_step_reference(make_model, batch):
    model = make_model().eval()
    mu, logvar = model.encoder.posterior(model.encoder(batch["input_ids"]))
    grads = torch.autograd.grad(mu.pow(2).sum() + logvar.sin().sum(), list(model.encoder.parameters()))
    mu_ref, logvar_ref = per_step_reference(model, batch["input_ids"])
    grads_ref = torch.autograd.grad(mu_ref.pow(2).sum() + logvar_ref.sin().sum(), list(model.encoder.parameters()))
    for grad, grad_ref in zip(grads, grads_ref):
        torch.testing.assert_close(grad, grad_ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("setting", ["standard", "inputless"])
def test_padding_invariance(make_model, tokenizer, sentences, setting):
    model = make_model(setting=setting).eval()
    texts = [sentences[0], max(sentences[:50], key=len), sentences[3]]
    padded = tokenizer(texts, return_tensors="pt", padding=True)
    assert (padded["attention_mask"] == 0).any()
    out = model(**padded, labels=padded["input_ids"])
    alone = [tokenizer([text], return_tensors="pt") for text in texts]
    outs = [model(**one, labels=one["input_ids"]) for one in alone]
    for row, single in enumerate(outs):
        torch.testing.assert_close(out.mu[row], single.mu[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(out.logvar[row], single.logvar[0], atol=1e-5, rtol=0)
        length = alone[row]["input_ids"].shape[1]
        torch.testing.assert_close(out.logits[row, : length - 1], single.logits[0], atol=1e-5, rtol=0)
    for name in ("loss", "reconstruction_loss", "kl_loss", "kl_last"):
        expected = torch.stack([getattr(single, name) for single in outs]).mean()
        torch.testing.assert_close(getattr(out, name), expected, atol=1e-5, rtol=1e-6)


def test_kl_terms_match_torch_distributions(make_model, batch):
    model = make_model().eval()
    out = model(**batch, labels=batch["input_ids"])
    standard = Normal(torch.zeros_like(out.mu), torch.ones_like(out.mu))
    expected_last = kl_divergence(Normal(out.mu, torch.exp(0.5 * out.logvar)), standard).sum(-1).mean()
    torch.testing.assert_close(out.kl_last, expected_last)

    mu_steps, logvar_steps = model.encoder.posterior(model.encoder(batch["input_ids"]))
    per_step = kl_divergence(Normal(mu_steps, torch.exp(0.5 * logvar_steps)), Normal(0.0, 1.0)).sum(-1)
    mask = batch["attention_mask"].float()
    expected_mean = ((per_step * mask).sum(1) / mask.sum(1)).mean()  # Eq. 3: average over each sentence's steps
    torch.testing.assert_close(out.kl_loss, expected_mean)
    assert out.kl_loss.item() > 0 and out.kl_last.item() > 0

    model_sum = make_model(kl_reduction="sum").eval()
    out_sum = model_sum(**batch, labels=batch["input_ids"])
    torch.testing.assert_close(out_sum.kl_loss, (per_step * mask).sum(1).mean())


def test_loss_is_reconstruction_plus_weighted_kl(make_model, batch):
    model = make_model(kl_weight=0.3).eval()
    out = model(**batch, labels=batch["input_ids"])
    torch.testing.assert_close(out.loss, out.reconstruction_loss + 0.3 * out.kl_loss)
    # reconstruction: -log p(x|z) summed over the predicted tokens (</s> included), averaged over sentences
    log_probs = torch.log_softmax(out.logits, -1)
    targets = batch["input_ids"][:, 1:]
    token_nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * batch["attention_mask"][:, 1:]
    torch.testing.assert_close(out.reconstruction_loss, token_nll.sum(1).mean())


def test_output_shapes_and_latent_choice(make_model, batch):
    model = make_model(latent_size=5)
    batch_size, length = batch["input_ids"].shape
    model.eval()
    out = model(**batch)
    assert out.loss is None and out.reconstruction_loss is None
    assert out.logits.shape == (batch_size, length - 1, len_vocab(model))
    assert out.mu.shape == out.logvar.shape == out.latent.shape == (batch_size, 5)
    assert torch.equal(out.latent, out.mu)  # eval decodes the posterior mean
    sampled = model(**batch, sample_latent=True).latent
    assert not torch.equal(sampled, out.mu)
    model.train()
    assert not torch.equal(model(**batch).latent, model(**batch).mu)  # training samples z


def len_vocab(model):
    return model.config.vocab_size


@pytest.mark.parametrize("setting", ["standard", "inputless"])
def test_gradients_reach_encoder_and_decoder(make_model, batch, setting):
    model = make_model(setting=setting).train()
    model(**batch, labels=batch["input_ids"]).loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name
    pad = model.config.pad_token_id
    assert model.encoder.enc_embedding.weight.grad[pad].abs().sum() == 0  # padding never learns


def test_inputless_decoder_sees_only_bos_then_unk(make_model, batch):
    model = make_model(setting="inputless")
    inputs = model.decoder_inputs(batch["input_ids"][:, :-1])
    assert (inputs[:, 0] == model.config.bos_token_id).all()
    assert (inputs[:, 1:] == model.config.unk_token_id).all()
    model.eval()  # inputless holds at evaluation too
    assert (model.decoder_inputs(batch["input_ids"])[:, 1:] == model.config.unk_token_id).all()


def test_word_dropout_between_zero_and_one_applies_in_training_only(make_model, batch):
    model = make_model(word_dropout=0.5).train()
    torch.manual_seed(0)
    ids = batch["input_ids"].repeat(20, 1)
    dropped = model.decoder_inputs(ids)[:, 1:] == model.config.unk_token_id
    real = ids[:, 1:] != model.config.unk_token_id
    assert abs(dropped[real].float().mean().item() - 0.5) < 0.05
    model.eval()
    assert torch.equal(model.decoder_inputs(ids), ids)


def test_authors_wiring_latent_is_decoder_initial_state(make_model):
    model = make_model()
    latent = torch.randn(3, model.config.latent_dim)
    (h0, c0), condition = model.decoder.initial_state(latent)
    hidden = model.config.hidden_size
    assert h0.shape == c0.shape == (2, 3, hidden)
    torch.testing.assert_close(h0[0], latent[:, :hidden])
    torch.testing.assert_close(c0[0], latent[:, hidden : 2 * hidden])
    torch.testing.assert_close(h0[1], latent[:, 2 * hidden : 3 * hidden])
    torch.testing.assert_close(condition, latent[:, 2 * hidden :])  # the top layer's [h; c]


def test_weights_start_as_pytorch_defaults(make_model):
    model = make_model(embedding_size=64, hidden_size=32)
    bound = 1 / math.sqrt(32)
    for lstm in list(model.encoder.layers) + [model.decoder.lstm]:
        for name, param in lstm.named_parameters():
            assert param.abs().max() <= bound, name
            assert param.abs().max() > 0.9 * bound, name  # uniform, not xavier / zeros
    assert model.decoder.lstm.bias_ih_l0.abs().sum() > 0  # transformers would zero LSTM biases
    embedding = model.encoder.enc_embedding.weight[1:]
    assert 0.9 < embedding.std().item() < 1.1  # N(0, 1), not N(0, 0.02)
    assert model.encoder.enc_embedding.weight[0].abs().sum() == 0
    linear = model.encoder.to_mu
    assert linear.weight.abs().max() <= 1 / math.sqrt(linear.in_features)
    assert linear.bias.abs().sum() > 0


def test_fast_dropout_keeps_the_expectation_and_the_rate():
    from hf_hrvae.models.hrvae.decoders_hrvae import FastDropout

    torch.manual_seed(0)
    dropout = FastDropout(0.5).train()
    x = torch.ones(200, 500)
    y = dropout(x)
    assert set(y.unique().tolist()) == {0.0, 2.0}
    assert abs((y == 0).float().mean().item() - 0.5) < 0.01 and abs(y.mean().item() - 1.0) < 0.02
    assert torch.equal(dropout.eval()(x), x)


@pytest.mark.skipif(not cpu_runs_bf16_lstm(), reason="this CPU's oneDNN has no bf16 LSTM (no AVX512-BF16 / AMX)")
def test_kl_stays_non_negative_under_bf16_autocast(make_model, batch):
    """Near the prior, exp(logvar) - 1 - logvar cancels: in bf16 it came out negative (and was optimised)."""
    model = make_model(embedding_size=64, hidden_size=32).eval()
    with torch.no_grad():
        for head in (model.encoder.to_mu, model.encoder.to_logvar):
            head.weight.mul_(1e-3)
            head.bias.mul_(1e-3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch, labels=batch["input_ids"])
    assert out.kl_loss.dtype == out.kl_last.dtype == torch.float32
    assert out.kl_loss.item() >= 0 and out.kl_last.item() >= 0


def test_real_positions_are_the_mask_in_row_major_order():
    lengths = torch.tensor([3, 0, 5, 1, 0, 2])
    mask = torch.arange(5) < lengths.unsqueeze(1)  # right-padded, with rows of padding only
    expected_rows, expected_positions = mask.nonzero().unbind(1)
    for num_real in (int(lengths.sum()), None):
        rows, positions = real_positions(lengths, num_real)
        assert torch.equal(rows, expected_rows) and torch.equal(positions, expected_positions)


def test_masked_mean_is_the_mean_over_kept_rows():
    values = torch.randn(5, 3, requires_grad=True)
    keep = torch.tensor([True, False, True, True, False])
    values.data[1] = float("nan")  # a dropped row's value takes no part, not even a NaN
    mean = masked_mean(values, keep)
    torch.testing.assert_close(mean, values[keep].mean(0))
    mean.sum().backward()
    assert torch.equal(values.grad, keep.float().unsqueeze(1).expand(5, 3) / 3)
    torch.testing.assert_close(masked_mean(values[:, 0], keep), values[keep, 0].mean())


@pytest.mark.parametrize("preset", ["hrvae", "vae-lstm-base", "vae-cnn"])
@pytest.mark.parametrize("stepwise", [True, False])
def test_a_training_step_reads_one_value_back_from_the_device(make_model, batch, preset, stepwise):
    # On a GPU every read-back and every output whose size depends on the data (a boolean mask's nonzero) stalls
    # the queue of launched kernels. A training step has one: the input checks, read in one transfer.
    model = make_model(**PRESETS[preset]).train()
    optimizer = torch.optim.Adam(model.parameters(), fused=True)
    assert (batch["attention_mask"] == 0).any()
    with forced_lstm_path(stepwise), count_host_syncs() as calls:
        output = model(**batch, labels=batch["input_ids"], global_step=1)
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    (operation, where), = calls  # exactly one kind, in one place
    assert calls[(operation, where)] == 1 and operation == "Tensor.tolist" and where.startswith("modeling_hrvae.py")


def test_embed_gives_the_posterior_means_of_a_list_of_sentences(make_model, tokenizer, sentences):
    model = make_model().train()
    texts = list(sentences[:5])
    embeddings = model.embed(texts, tokenizer=tokenizer, batch_size=2)
    assert model.training  # the mode is restored
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    model.eval()
    mu, _ = model.encode(batch["input_ids"], batch["attention_mask"])
    assert embeddings.shape == (5, model.config.latent_dim) and embeddings.dtype == torch.float32
    torch.testing.assert_close(embeddings, mu, atol=1e-5, rtol=1e-5)  # batches of 2 or 5: the same
    torch.testing.assert_close(model.embed(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]), mu)
    with pytest.raises(ValueError, match="pass the model's tokenizer"):
        model.embed(texts)
    with pytest.raises(TypeError, match="list of strings"):
        model.embed("one sentence", tokenizer=tokenizer)
    with pytest.raises(ValueError, match="either sentences"):
        model.embed()
