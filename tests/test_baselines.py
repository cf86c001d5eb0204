"""The paper's baselines as configurations of the one model: presets, annealing, CNN decoder, vMF, free bits, BN-VAE."""

import json
import math

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from hf_hrvae import HRVAEConfig, HRVAEModel
from hf_hrvae.models.hrvae.latent_hrvae import (
    kl_annealing_weight,
    log_bessel_iv,
    log_sphere_area,
    vmf_kl,
    vmf_log_density,
    vmf_log_normalizer,
    vmf_mean_length,
    vmf_sample,
    wood_sample_w,
)
from hf_hrvae.training import TrainingArguments, train
from test_save_load import load_without_hf_hrvae

PRESETS = ["hrvae", "vae-lstm-base", "vae-cnn", "vmf-vae"]


def tiny_preset(name, vocab_size, **overrides):
    values = dict(vocab_size=vocab_size, embedding_size=12, hidden_size=8, latent_size=6)
    if name == "hrvae":
        values.pop("latent_size")
    return HRVAEConfig.from_preset(name, **{**values, **overrides})


def test_presets_select_the_systems():
    assert HRVAEConfig.from_preset("hrvae").kl_regularisation == "holistic"
    base = HRVAEConfig.from_preset("vae-lstm-base", setting="inputless")
    assert (base.kl_regularisation, base.kl_annealing, base.kl_anneal_k, base.kl_anneal_x0) == ("last", "sigmoid", 0.0025, 2500)
    assert base.setting == "inputless" and base.preset == "vae-lstm-base"
    cnn = HRVAEConfig.from_preset("vae-cnn")
    assert cnn.decoder_type == "cnn" and cnn.cnn_dilations == [1, 2, 4]
    vmf = HRVAEConfig.from_preset("vmf-vae", vmf_kappa=50.0)
    assert vmf.latent_distribution == "vmf" and vmf.vmf_kappa == 50.0 and vmf.latent_size == 32
    with pytest.raises(ValueError, match="Unknown preset 'vmf'; choose one of"):
        HRVAEConfig.from_preset("vmf")
    with pytest.raises(ValueError, match="latent_distribution='vmf' needs latent_size"):
        HRVAEConfig(latent_distribution="vmf")
    with pytest.raises(ValueError, match="HRVAEConfig.decoder_type must be one of"):
        HRVAEConfig(decoder_type="transformer")


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_trains_saves_reloads_and_generates(preset, e2e_folder, tmp_path):
    out = tmp_path / preset
    results = train(TrainingArguments(
        dataset_name=e2e_folder, output_dir=str(out), preset=preset, max_train_samples=64, max_eval_samples=16,
        per_device_train_batch_size=16, embedding_size=16, hidden_size=16, num_train_epochs=1, seed=0,
        **({} if preset == "hrvae" else {"latent_size": 8}),
    ))
    assert results["completed_steps"] == 4 and math.isfinite(results["best_validation"]["elbo_nll"])
    model = AutoModel.from_pretrained(out).eval()
    assert model.config.preset == preset
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(["blue spice is a coffee shop ."], return_tensors="pt")
    reloaded = HRVAEModel.from_pretrained(out).eval()
    assert torch.equal(model(**batch).logits, reloaded(**batch).logits)

    remote = load_without_hf_hrvae(out, tmp_path)
    assert torch.equal(remote["logits"], model(**batch).logits)
    assert torch.equal(remote["ids"], model.generate(**batch, max_new_tokens=6))
    torch.manual_seed(0)
    samples = model.generate(num_return_sequences=3, do_sample=True, max_new_tokens=5)
    assert samples.shape[0] == 3


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("setting", ["standard", "inputless"])
def test_step_by_step_generation_equals_teacher_forcing(preset, setting, tokenizer):
    torch.manual_seed(0)
    model = HRVAEModel(tiny_preset(preset, len(tokenizer), setting=setting)).eval()
    latent = model.sample_prior(3)
    out = model.generate(latent=latent, max_new_tokens=10, return_dict_in_generate=True, output_logits=True)
    torch.testing.assert_close(torch.stack(out.logits, 1), model.decode(latent, out.sequences), atol=1e-5, rtol=1e-5)


def test_annealing_schedules():
    def weight(schedule, step):
        return kl_annealing_weight(schedule, step, anneal_steps=100, k=0.0025, x0=2500, cycle_length=100,
                                   cycle_ratio=0.5)

    assert weight("none", 0) == 1.0
    assert [weight("linear", s) for s in (0, 50, 100, 500)] == [0.0, 0.5, 1.0, 1.0]
    assert weight("sigmoid", 2500) == 0.5  # Sentence-VAE: k = 0.0025, x0 = 2500
    assert weight("sigmoid", 0) == pytest.approx(1 / (1 + math.exp(6.25)))
    assert weight("sigmoid", 5000) == pytest.approx(1 / (1 + math.exp(-6.25)))
    assert [weight("cyclical", s) for s in (0, 25, 50, 99, 100, 125)] == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5]


def test_the_trainer_drives_annealing_by_its_global_step(e2e_folder, tmp_path):
    out = tmp_path / "annealed"
    train(TrainingArguments(
        dataset_name=e2e_folder, output_dir=str(out), preset="vae-lstm-base", kl_annealing="linear",
        kl_anneal_steps=4, max_train_samples=96, per_device_train_batch_size=16, embedding_size=16, hidden_size=16,
        max_eval_samples=16, num_train_epochs=1, latent_size=8,
    ))
    steps = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [entry for entry in steps if entry["kind"] == "train_step"]
    for entry in steps:  # step s (1-based) trains with weight min(1, (s - 1) / 4)
        beta = min(1.0, (entry["step"] - 1) / 4)
        assert entry["loss"] == pytest.approx(entry["reconstruction"] + beta * entry["kl_holistic"], rel=1e-5)


def test_kl_on_the_last_step_only(tokenizer, batch):
    torch.manual_seed(0)
    model = HRVAEModel(tiny_preset("vae-lstm-base", len(tokenizer))).eval()
    out = model(**batch)
    torch.testing.assert_close(out.kl_loss, out.kl_last)  # no holistic term: the training KL is the used latent's


def test_cnn_decoder_is_causal(tokenizer, batch):
    torch.manual_seed(0)
    model = HRVAEModel(tiny_preset("vae-cnn", len(tokenizer), cnn_dilations=[1, 2, 4, 8])).eval()
    captured = {}
    model.decoder.dec_embedding.register_forward_hook(lambda module, args, output: captured.update(embedded=output))
    ids = batch["input_ids"]
    logits = model.decode(model.sample_prior(ids.shape[0]), ids)
    for t in (0, 3, logits.shape[1] - 2):
        grad = torch.autograd.grad(logits[:, t].sum(), captured["embedded"], retain_graph=True)[0]
        assert grad[:, t + 1 :].abs().max() == 0  # nothing after t
        assert grad[:, t].abs().max() > 0
    # and nothing before its receptive field: 1 + (kernel - 1) * sum(dilations) = 31 positions
    receptive = 1 + sum((model.config.cnn_kernel_size - 1) * d for d in model.config.cnn_dilations)
    long_ids = torch.randint(4, len(tokenizer), (2, receptive + 10))
    logits = model.decode(model.sample_prior(2), long_ids)
    t = logits.shape[1] - 1
    grad = torch.autograd.grad(logits[:, t].sum(), captured["embedded"])[0]
    assert grad[:, : t - receptive + 1].abs().max() == 0 and grad[:, t - receptive + 1].abs().max() > 0


@pytest.mark.parametrize("dim, kappa", [(3, 5.0), (16, 30.0), (32, 80.0), (128, 80.0)])
def test_vmf_samples_are_unit_vectors_with_the_right_mean_cosine(dim, kappa):
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(4, dim, dtype=torch.float64, generator=generator)
    samples = vmf_sample(direction, kappa, 4000, generator)
    torch.testing.assert_close(samples.norm(dim=-1), torch.ones(4, 4000, dtype=torch.float64))
    cosine = (samples * torch.nn.functional.normalize(direction, dim=-1).unsqueeze(1)).sum(-1)
    standard_error = cosine.std() / math.sqrt(cosine.numel())
    assert abs(cosine.mean().item() - vmf_mean_length(dim, kappa)) < 4 * standard_error


def test_vmf_sampling_is_differentiable_in_the_direction():
    direction = torch.randn(2, 8, requires_grad=True)
    samples = vmf_sample(direction, 20.0, 5, torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad(samples[..., 0].sum(), direction)
    assert grad.abs().sum() > 0


def test_log_bessel_matches_mpmath():
    mpmath = pytest.importorskip("mpmath")
    for order, x in [(0, 1.0), (0.5, 300.0), (15, 80.0), (511, 80.0), (100, 1000.0), (15, 0.01)]:
        assert log_bessel_iv(order, x) == pytest.approx(float(mpmath.log(mpmath.besseli(order, x))), rel=1e-12)


def test_vmf_kl_matches_the_closed_form_and_the_density():
    kappa = 5.0  # dim 3: C = kappa / (4 pi sinh kappa), A = coth kappa - 1 / kappa
    closed = kappa * (1 / math.tanh(kappa) - 1 / kappa) + math.log(kappa / (4 * math.pi * math.sinh(kappa))) + math.log(4 * math.pi)
    assert vmf_kl(3, kappa) == pytest.approx(closed, rel=1e-12)
    for dim, kappa in [(3, 5.0), (32, 80.0)]:  # KL = E_q[log q(z) - log p(z)]
        direction = torch.randn(1, dim, dtype=torch.float64)
        z = vmf_sample(direction, kappa, 20000, torch.Generator().manual_seed(1))
        log_ratio = vmf_log_density(z, direction, kappa) + log_sphere_area(dim)
        assert log_ratio.mean().item() == pytest.approx(vmf_kl(dim, kappa), abs=4 * log_ratio.std().item() / math.sqrt(20000))


@pytest.mark.parametrize("dim, kappa", [(3, 2.0), (5, 10.0), (10, 50.0)])
def test_vmf_density_integrates_to_one(dim, kappa):
    integrate = pytest.importorskip("scipy.integrate")
    # On S^(dim-1), w = mu^T z has density C exp(kappa w) area(S^(dim-2)) (1 - w^2)^((dim-3)/2) on [-1, 1].
    log_c, log_area = vmf_log_normalizer(dim, kappa), log_sphere_area(dim - 1)
    total, _ = integrate.quad(lambda w: math.exp(log_c + kappa * w + log_area) * (1 - w * w) ** ((dim - 3) / 2), -1, 1)
    assert total == pytest.approx(1.0, rel=1e-8)


def test_wood_sampler_is_reproducible_with_a_generator():
    first = wood_sample_w(32, 80.0, 100, torch.Generator().manual_seed(3))
    assert torch.equal(first, wood_sample_w(32, 80.0, 100, torch.Generator().manual_seed(3)))
    assert ((first > -1) & (first < 1)).all()


def test_vmf_model_uses_the_vmf_density_and_constant_kl(tokenizer, batch):
    torch.manual_seed(0)
    model = HRVAEModel(tiny_preset("vmf-vae", len(tokenizer), vmf_kappa=30.0)).eval()
    out = model(**batch, labels=batch["input_ids"])
    assert out.logvar is None and not hasattr(model.encoder.to_logvar, "weight")
    assert out.kl_last.item() == pytest.approx(vmf_kl(6, 30.0), rel=1e-6) == out.kl_loss.item()
    torch.testing.assert_close(out.latent.norm(dim=-1), torch.ones(out.latent.shape[0]))  # decodes the mean direction
    z = model.sample_posterior(out.mu, None, 3)
    torch.testing.assert_close(model.posterior_log_density(z, out.mu, None), vmf_log_density(z, out.mu, 30.0))
    assert torch.allclose(model.prior_log_density(z), torch.tensor(-log_sphere_area(6)))


def test_free_bits_total_and_per_dimension(tokenizer):
    model = HRVAEModel(tiny_preset("vae-lstm-base", len(tokenizer), free_bits=0.5))
    kl_terms = torch.tensor([[0.1, 2.0, 0.0], [0.3, 0.0, 0.2]])  # (sentences, dims); batch means 0.2, 1.0, 0.1
    present = torch.tensor([True, True])
    assert model.kl_training_term(torch.zeros(2, 3), kl_terms, present).item() == pytest.approx(1.3)  # max(0.5, 1.3)
    model.config.free_bits = 2.0
    assert model.kl_training_term(torch.zeros(2, 3), kl_terms, present).item() == pytest.approx(2.0)
    model.config.free_bits, model.config.free_bits_per_dim = 0.5, True
    assert model.kl_training_term(torch.zeros(2, 3), kl_terms, present).item() == pytest.approx(0.5 + 1.0 + 0.5)


def test_vae_cnn_preset_clips_its_kl_term_at_five_nats(tokenizer, batch):
    torch.manual_seed(0)
    model = HRVAEModel(tiny_preset("vae-cnn", len(tokenizer))).eval()
    out = model(**batch, labels=batch["input_ids"])
    assert 0 < out.kl_last.item() < 5.0  # a fresh model's KL is below the floor: the loss counts the floor
    assert (out.loss - out.reconstruction_loss).item() == pytest.approx(5.0)
    model.config.free_bits = 0.0
    out = model(**batch, labels=batch["input_ids"])
    assert (out.loss - out.reconstruction_loss).item() == pytest.approx(out.kl_last.item(), rel=1e-5)


def test_bn_vae_normalises_mu_with_a_fixed_scale(tokenizer, batch, tmp_path):
    torch.manual_seed(0)
    model = HRVAEModel(tiny_preset("vae-lstm-base", len(tokenizer), bn_vae=True, bn_gamma=0.7)).train()
    norm = model.encoder.mu_norm
    assert not norm.weight.requires_grad and torch.all(norm.weight == 0.7)
    out = model(**batch, labels=batch["input_ids"])
    torch.testing.assert_close(out.mu.mean(0), norm.bias.detach().expand(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.mu.std(0, unbiased=False), torch.full((6,), 0.7), atol=5e-3, rtol=0)  # BN's eps
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    out.loss.backward()
    optimizer.step()
    assert torch.all(norm.weight == 0.7) and norm.bias.abs().sum() > 0  # the shift learns, the scale does not
    model.save_pretrained(tmp_path)
    assert torch.equal(HRVAEModel.from_pretrained(tmp_path).encoder.mu_norm.weight, norm.weight)


def test_vmf_evaluation_is_valid_and_batch_size_invariant(tokenizer, sentences):
    from accelerate import Accelerator
    from datasets import Dataset
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    from hf_hrvae.evaluation import evaluate_model

    torch.manual_seed(0)
    model = HRVAEModel(tiny_preset("vmf-vae", len(tokenizer), vmf_kappa=20.0)).eval()
    data = Dataset.from_dict({"input_ids": tokenizer(sentences[:12])["input_ids"], "index": list(range(12))})
    results = [
        evaluate_model(model, DataLoader(data, batch_size=size, collate_fn=DataCollatorWithPadding(tokenizer)),
                       Accelerator(cpu=True), iw_samples=8)
        for size in (3, 12)
    ]
    valid = results[0]["valid"]
    assert valid["kl"] == pytest.approx(vmf_kl(6, 20.0)) and valid["iw_nll"] < valid["elbo_nll"]
    assert 0 <= valid["active_units"] <= 6 and valid["mutual_info"] <= math.log(12)
    for name, value in valid.items():  # fp32 matrix products of other sizes round differently (~1e-7)
        assert results[1]["valid"][name] == pytest.approx(value, rel=1e-5), name


@pytest.mark.parametrize("setting", ["standard", "inputless"])
def test_last_beta_ablation_is_hrvae_without_the_intermediate_steps(tokenizer, batch, setting):
    """kl_regularisation="last_beta": HR-VAE's loss minus the share of every step but the last (Eq. 3's mean)."""
    hrvae = HRVAEModel(tiny_preset("hrvae", len(tokenizer), setting=setting)).eval()
    ablation = HRVAEModel(tiny_preset("hrvae", len(tokenizer), setting=setting, kl_regularisation="last_beta")).eval()
    ablation.load_state_dict(hrvae.state_dict())  # the same weights: the same heads, used at the last step only
    ids, mask = batch["input_ids"], batch["attention_mask"]
    outputs = []
    for model in (hrvae, ablation):
        torch.manual_seed(0)  # the same z noise
        outputs.append(model(ids, mask, labels=ids))
    full, last = outputs
    # the intermediate steps' share, by hand from every step's posterior
    lengths = mask.sum(1)
    mu, logvar = hrvae.encoder.posterior(hrvae.encoder(ids))  # (B, T, D) at every position
    per_step = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)  # (B, T)
    steps = torch.arange(ids.shape[1]).unsqueeze(0)
    intermediate = (per_step * (steps < (lengths - 1).unsqueeze(1))).sum(1) / lengths
    torch.testing.assert_close(last.reconstruction_loss, full.reconstruction_loss)
    torch.testing.assert_close(last.kl_loss, full.kl_loss - intermediate.mean(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last.loss, full.loss - intermediate.mean(), atol=1e-5, rtol=1e-5)
    used = ablation.latent_kl(*ablation.encode(ids, mask))  # (B,): the used latent's KL, at weight 1 / n
    torch.testing.assert_close(last.kl_loss, (used / lengths).mean(), atol=1e-5, rtol=1e-5)
    assert intermediate.min() > 0  # the batch has sentences of several steps: the two losses differ


def test_last_beta_needs_the_mean_reduction_and_trains(e2e_folder, tmp_path):
    with pytest.raises(ValueError, match="with kl_reduction='sum' use kl_regularisation='last'"):
        HRVAEConfig(vocab_size=20, kl_regularisation="last_beta", kl_reduction="sum")
    out = tmp_path / "last-beta"
    train(TrainingArguments(dataset_name=e2e_folder, output_dir=str(out), max_train_samples=32, max_eval_samples=8,
                            per_device_train_batch_size=16, embedding_size=12, hidden_size=8, num_train_epochs=1,
                            kl_regularisation="last_beta"))
    assert AutoModel.from_pretrained(out).config.kl_regularisation == "last_beta"


@pytest.mark.parametrize("distribution", ["gaussian", "vmf"])
def test_the_latent_distribution_is_one_object_the_model_asks(distribution):
    """The model's latent methods are its distribution's (GaussianLatent / VMFLatent), not branches on its type."""
    from hf_hrvae.models.hrvae.latent_hrvae import GaussianLatent, VMFLatent

    config = HRVAEConfig(vocab_size=20, embedding_size=8, hidden_size=8, latent_size=6, latent_distribution=distribution)
    model = HRVAEModel(config).eval()
    expected = {"gaussian": GaussianLatent, "vmf": VMFLatent}[distribution]
    assert type(model.distribution) is expected and (model.encoder.to_logvar is None) == (distribution == "vmf")
    mu = torch.randn(3, 6)
    logvar = torch.randn(3, 6) if distribution == "gaussian" else None
    generators = [torch.Generator().manual_seed(i) for i in range(3)]
    z = model.sample_posterior(mu, logvar, 4, generators)
    again = model.sample_posterior(mu, logvar, 4, [torch.Generator().manual_seed(i) for i in range(3)])
    assert z.shape == (3, 4, 6) and torch.equal(z, again)  # per-row generators: reproducible
    assert model.posterior_log_density(z, mu, logvar).shape == (3, 4)
    assert model.pairwise_posterior_log_density(z[:, 0], mu, logvar).shape == (3, 3)
    assert model.latent_kl(mu, logvar).shape == (3,) and (model.latent_kl(mu, logvar) >= 0).all()
    prior = model.sample_prior(5)
    assert prior.shape == (5, 6) and model.prior_log_density(prior).shape == (5,)
    if distribution == "vmf":  # unit vectors, a constant KL, the mean direction decoded
        torch.testing.assert_close(prior.norm(dim=-1), torch.ones(5))
        assert model.latent_kl(mu, None).unique().numel() == 1
        torch.testing.assert_close(model.posterior_mode(mu, None), torch.nn.functional.normalize(mu, dim=-1))
    else:
        assert torch.equal(model.posterior_mode(mu, logvar), mu) and torch.equal(model.posterior_mean(mu, logvar), mu)
