import pytest
import torch
from transformers import GenerationConfig, LogitsProcessorList, SuppressTokensLogitsProcessor


def never_end(model):
    return LogitsProcessorList([SuppressTokensLogitsProcessor([model.config.eos_token_id])])


@pytest.mark.parametrize("setting", ["standard", "inputless"])
def test_greedy_generation_reproduces_teacher_forced_logits(make_model, setting):
    model = make_model(setting=setting).eval()
    torch.manual_seed(1)
    latent = torch.randn(4, model.config.latent_dim)
    out = model.generate(latent=latent, max_new_tokens=12, return_dict_in_generate=True, output_logits=True)
    steps = torch.stack(out.logits, dim=1)  # (N, steps, V)
    assert out.sequences.shape == (4, 1 + steps.shape[1])
    teacher_forced = model.decode(latent, out.sequences)
    torch.testing.assert_close(steps, teacher_forced, atol=1e-5, rtol=1e-5)
    assert torch.equal(out.sequences[:, 1:], steps.argmax(-1).masked_fill(out.sequences[:, 1:] == 0, 0))


def test_reconstruction_uses_the_posterior_mean(make_model, batch):
    model = make_model().eval()
    ids = model.generate(**batch, max_new_tokens=5)
    mu, _ = model.encode(**batch)
    assert torch.equal(ids, model.generate(latent=mu, max_new_tokens=5))
    assert (ids[:, 0] == model.config.bos_token_id).all()
    three = model.generate(**batch, max_new_tokens=5, num_return_sequences=3)
    assert torch.equal(three, ids.repeat_interleave(3, dim=0))


def test_prior_sampling_shape_and_seed_determinism(make_model):
    model = make_model().eval()
    torch.manual_seed(0)
    first = model.generate(num_return_sequences=5, do_sample=True, top_p=0.9, max_new_tokens=10)
    torch.manual_seed(0)
    again = model.generate(num_return_sequences=5, do_sample=True, top_p=0.9, max_new_tokens=10)
    torch.manual_seed(1)
    other = model.generate(num_return_sequences=5, do_sample=True, top_p=0.9, max_new_tokens=10)
    assert first.shape[0] == 5 and first.shape[1] <= 11
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_generation_config_and_warpers(make_model):
    model = make_model().eval()
    latent = torch.randn(2, model.config.latent_dim)
    config = GenerationConfig(do_sample=True, top_k=1, max_new_tokens=6)
    # top_k = 1 sampling is greedy decoding
    assert torch.equal(model.generate(latent=latent, generation_config=config), model.generate(latent=latent, max_new_tokens=6))
    out = model.generate(latent=latent, do_sample=True, top_k=3, temperature=0.7, max_new_tokens=6,
                         return_dict_in_generate=True, output_scores=True)
    for scores in out.scores:  # top_k = 3 keeps exactly three finite scores per row
        assert (torch.isfinite(scores).sum(-1) == 3).all()
    with pytest.raises(ValueError, match="beam search"):
        model.generate(latent=latent, generation_config=GenerationConfig(num_beams=3))
    with pytest.raises(ValueError, match="unsupported arguments \\['num_beams'\\]"):
        model.generate(latent=latent, num_beams=3)


def test_stops_at_eos_and_pads_finished_rows(make_model):
    model = make_model().eval()
    eos, pad = model.config.eos_token_id, model.config.pad_token_id

    class EndRowZeroFirst:
        def __call__(self, input_ids, scores):
            scores = scores.clone()
            scores[:, eos] = -float("inf")
            if input_ids.shape[1] == 2:
                scores[0, eos] = float("inf")
            if input_ids.shape[1] == 4:
                scores[:, eos] = float("inf")
            return scores

    ids = model.generate(latent=torch.randn(3, model.config.latent_dim), max_new_tokens=20,
                         logits_processor=LogitsProcessorList([EndRowZeroFirst()]))
    assert ids.shape == (3, 5)  # stopped once every row had ended
    assert ids[0, 2].item() == eos and (ids[0, 3:] == pad).all()
    assert (ids[1:, 4] == eos).all()


@pytest.mark.parametrize("setting", ["standard", "inputless"])
def test_cost_is_linear_in_length(make_model, setting):
    """Each new token is one single-step decoder call on the carried state: no re-run of the prefix."""
    model = make_model(setting=setting).eval()
    seen = []
    handle = model.decoder.register_forward_hook(lambda module, args, output: seen.append(args[0].shape[1]))
    latent = torch.randn(2, model.config.latent_dim)
    totals = {}
    for new_tokens in (8, 32):
        seen.clear()
        model.generate(latent=latent, max_new_tokens=new_tokens, logits_processor=never_end(model))
        totals[new_tokens] = sum(seen)
        assert set(seen) == {1}
    handle.remove()
    assert totals == {8: 8, 32: 32}


def test_max_new_tokens_beyond_max_decode_length_is_clamped(make_model):
    model = make_model(max_decode_length=10).eval()
    ids = model.generate(latent=torch.randn(1, model.config.latent_dim), max_new_tokens=50,
                         logits_processor=never_end(model))
    assert ids.shape == (1, 10)


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_interpolation_ends_decode_the_two_sentences(make_model, tokenizer, sentences, method):
    model = make_model().eval()
    a = tokenizer(sentences[0], return_tensors="pt")["input_ids"]
    b = tokenizer(sentences[1], return_tensors="pt")["input_ids"][0]
    path = model.interpolate(a, b, steps=4, method=method, max_new_tokens=8)
    assert path.shape[0] == 4
    ends = model.generate(latent=torch.cat([model.encode(a)[0], model.encode(b.unsqueeze(0))[0]]), max_new_tokens=8)
    width = min(path.shape[1], ends.shape[1])
    assert torch.equal(path[[0, -1], :width], ends[:, :width])
    with pytest.raises(ValueError, match="method must be one of"):
        model.interpolate(a, b, method="cubic")


def test_slerp_keeps_points_on_the_arc():
    from hf_hrvae.generation_hrvae import slerp

    start, end = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    points = slerp(start, end, torch.linspace(0, 1, 5))
    torch.testing.assert_close(points.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(points[0], start)
    torch.testing.assert_close(points[-1], end)


def test_bad_latent_shape(make_model):
    model = make_model().eval()
    with pytest.raises(ValueError, match="latent must have shape"):
        model.generate(latent=torch.randn(2, 3))
    with pytest.raises(ValueError, match="not both"):
        model.generate(input_ids=torch.tensor([[2, 3]]), latent=torch.randn(1, model.config.latent_dim))


@pytest.mark.parametrize("name, value", [("max_new_tokens", 0), ("num_return_sequences", -2), ("top_k", 1.5)])
def test_bad_generation_arguments(make_model, name, value):
    model = make_model().eval()
    with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
        model.generate(**{name: value})
