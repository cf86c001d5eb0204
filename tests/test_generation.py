import pytest
import torch
from transformers import (
    GenerationConfig,
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    SuppressTokensLogitsProcessor,
)

from hf_hrvae.models.hrvae.generation_hrvae import NoBackToBackRepeatLogitsProcessor


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
    with pytest.raises(ValueError, match="unsupported arguments \\['num_beam'\\]"):
        model.generate(latent=latent, num_beam=3)


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
    from hf_hrvae.models.hrvae.generation_hrvae import slerp

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


@pytest.mark.parametrize("setting", ["standard", "inputless"])
def test_repetition_tricks_are_the_transformers_processors_of_those_names(make_model, setting):
    model = make_model(setting=setting).eval()
    torch.manual_seed(0)
    latent = torch.randn(8, model.config.latent_dim)
    steps = dict(latent=latent, max_new_tokens=15, logits_processor=never_end(model))

    def distinct(ids):  # distinct generated tokens per row
        return [len(set(row.tolist()[1:])) for row in ids]

    plain = model.generate(**steps)
    assert min(distinct(plain)) < 15  # a tiny random model repeats itself: the checks below can fail
    assert distinct(model.generate(**steps, no_repeat_ngram_size=1)) == [15] * 8
    assert distinct(model.generate(**steps, no_repeat_ngram_size=1, num_beams=3)) == [15] * 8
    config = GenerationConfig(no_repeat_ngram_size=1, max_new_tokens=15)
    assert torch.equal(model.generate(latent=latent, generation_config=config, logits_processor=never_end(model)),
                       model.generate(**steps, no_repeat_ngram_size=1))
    penalised = model.generate(**steps, repetition_penalty=1.5)
    by_hand = model.generate(latent=latent, max_new_tokens=15, logits_processor=LogitsProcessorList(
        [RepetitionPenaltyLogitsProcessor(1.5), *never_end(model)]))
    assert torch.equal(penalised, by_hand) and not torch.equal(penalised, plain)
    assert torch.equal(model.generate(**steps, repetition_penalty=1.0, no_repeat_ngram_size=0), plain)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_no_back_to_back_repeats_forbids_only_the_previous_token(make_model, num_beams):
    model = make_model(setting="inputless").eval()
    torch.manual_seed(0)
    steps = dict(latent=torch.randn(8, model.config.latent_dim), max_new_tokens=15, logits_processor=never_end(model),
                 num_beams=num_beams)

    def back_to_back(ids):
        return sum(a == b for row in ids.tolist() for a, b in zip(row[1:], row[2:]))

    assert back_to_back(model.generate(**steps)) > 0  # a tiny random model stutters: the check below can fail
    banned = model.generate(**steps, no_back_to_back_repeats=True)
    assert back_to_back(banned) == 0
    assert max(len(row) - 1 - len(set(row[1:])) for row in banned.tolist()) > 0  # a word may come back later
    scores = NoBackToBackRepeatLogitsProcessor()(torch.tensor([[2, 5, 7]]), torch.zeros(1, 9))
    assert scores[0, 7] == float("-inf") and torch.isfinite(scores[0, :7]).all() and torch.isfinite(scores[0, 8])
    with pytest.raises(ValueError, match="no_back_to_back_repeats must be True or False"):
        model.generate(max_new_tokens=3, no_back_to_back_repeats=1)


@pytest.mark.parametrize("name, value, message", [
    ("repetition_penalty", 0, "repetition_penalty must be a number > 0"),
    ("repetition_penalty", "1.2", "repetition_penalty must be a number > 0"),
    ("no_repeat_ngram_size", -1, "no_repeat_ngram_size must be an integer >= 0"),
    ("no_repeat_ngram_size", 1.5, "no_repeat_ngram_size must be an integer >= 0"),
])
def test_bad_repetition_arguments(make_model, name, value, message):
    model = make_model().eval()
    with pytest.raises(ValueError, match=message):
        model.generate(max_new_tokens=3, **{name: value})


def sequence_log_probs(model, latent, sequences):
    """log p(sequence | z) by teacher forcing, up to and including `</s>` (padding after it ignored): `(N,)`."""
    log_probs = torch.log_softmax(model.decode(latent, sequences).float(), dim=-1)
    targets = sequences[:, 1:]
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    real = targets != model.config.pad_token_id
    return (picked * real).sum(1), real.sum(1)


@pytest.mark.parametrize("setting", ["standard", "inputless"])
def test_one_beam_is_greedy_decoding(make_model, batch, setting):
    model = make_model(setting=setting).eval()
    greedy = model.generate(**batch, max_new_tokens=12)
    assert torch.equal(model.generate(**batch, max_new_tokens=12, num_beams=1), greedy)
    assert torch.equal(model.generate(**batch, generation_config=GenerationConfig(num_beams=1, max_new_tokens=12)),
                       greedy)


@pytest.mark.parametrize("setting", ["standard", "inputless"])
def test_beam_search_finds_sequences_at_least_as_likely_as_greedy(make_model, setting):
    model = make_model(setting=setting, seed=3).eval()
    torch.manual_seed(0)
    latent = 3 * torch.randn(8, model.config.latent_dim)  # spread-out latents: the decoder's choices differ
    greedy = model.generate(latent=latent, max_new_tokens=10)
    out = model.generate(latent=latent, max_new_tokens=10, num_beams=4, length_penalty=0.0,
                         return_dict_in_generate=True)
    greedy_log_prob, _ = sequence_log_probs(model, latent, greedy)
    beam_log_prob, _ = sequence_log_probs(model, latent, out.sequences)
    torch.testing.assert_close(out.sequences_scores, beam_log_prob, atol=1e-4, rtol=0)  # the score is log p
    assert (beam_log_prob >= greedy_log_prob - 1e-4).all()
    if setting == "standard":  # inputless: the decoder never sees its tokens, so each step's greedy choice is
        assert (beam_log_prob > greedy_log_prob + 1e-3).any()  # already the best; here beams find better ones
    normalised = model.generate(latent=latent, max_new_tokens=10, num_beams=4, return_dict_in_generate=True)
    log_prob, length = sequence_log_probs(model, latent, normalised.sequences)
    torch.testing.assert_close(normalised.sequences_scores, log_prob / length, atol=1e-4, rtol=0)


def test_beam_hypotheses_end_at_eos_and_are_ranked(make_model):
    model = make_model(seed=3).eval()
    eos, pad = model.config.eos_token_id, model.config.pad_token_id
    latent = 3 * torch.randn(3, model.config.latent_dim, generator=torch.Generator().manual_seed(1))
    out = model.generate(latent=latent, max_new_tokens=10, num_beams=5, num_return_sequences=3,
                         return_dict_in_generate=True)
    assert out.sequences.shape[0] == 9 and out.latent.shape[0] == 9
    for row in out.sequences[:, 1:].tolist():
        if eos in row:  # nothing but padding after </s>
            assert all(token == pad for token in row[row.index(eos) + 1:])
    scores = out.sequences_scores.view(3, 3)
    assert (scores[:, :-1] >= scores[:, 1:]).all()  # best first
    assert len({tuple(row) for row in out.sequences.tolist()}) == 9  # distinct hypotheses


@pytest.mark.parametrize("decoder_type", ["lstm", "cnn"])
def test_a_batch_decodes_like_each_row_alone(make_model, batch, decoder_type):
    model = make_model(seed=3, decoder_type=decoder_type).eval()
    together = model.generate(**batch, max_new_tokens=12, num_beams=3, num_return_sequences=2)
    for row in range(batch["input_ids"].shape[0]):
        alone = model.generate(input_ids=batch["input_ids"][row : row + 1],
                               attention_mask=batch["attention_mask"][row : row + 1],
                               max_new_tokens=12, num_beams=3, num_return_sequences=2)
        expected = torch.full((2, together.shape[1]), model.config.pad_token_id)
        expected[:, : alone.shape[1]] = alone
        assert torch.equal(together[2 * row : 2 * row + 2], expected)


@pytest.mark.parametrize("setting", ["standard", "inputless"])
def test_beam_search_costs_one_decoder_step_per_token_per_beam(make_model, setting):
    model = make_model(setting=setting).eval()
    seen = []
    handle = model.decoder.register_forward_hook(lambda module, args, output: seen.append(tuple(args[0].shape)))
    latent = torch.randn(2, model.config.latent_dim)
    for new_tokens in (8, 32):
        seen.clear()
        ids = model.generate(latent=latent, max_new_tokens=new_tokens, num_beams=3, logits_processor=never_end(model))
        assert seen == [(6, 1)] * new_tokens and ids.shape == (2, 1 + new_tokens)  # 2 inputs x 3 beams, one token
    handle.remove()


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_beams=2, num_return_sequences=3), "must be <= num_beams"),
    (dict(num_beams=2, do_sample=True), "do_sample=True with beams"),
    (dict(num_beams=2, output_scores=True), "not recorded for beam search"),
    (dict(num_beams=0), "num_beams must be a positive integer"),
])
def test_bad_beam_arguments(make_model, kwargs, message):
    model = make_model().eval()
    with pytest.raises(ValueError, match=message):
        model.generate(latent=torch.randn(1, model.config.latent_dim), **kwargs)
    with pytest.raises(ValueError, match="pass latent=model.sample_prior"):
        model.generate(num_beams=2)
