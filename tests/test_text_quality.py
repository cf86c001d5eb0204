import pytest
import torch

from hf_hrvae import HRVAEConfig, HRVAEModel, build_tokenizer
from hf_hrvae.text_quality import distinct_n, has_repeat, prior_sample_metrics, prior_sample_texts, repeat_rate


@pytest.mark.parametrize("text, expected", [
    ("the eagle is a a pub .", True), ("near near the river", True), ("food . .", True),
    ("a pub near a river", False), ("", False), ("word", False),
])
def test_a_repeat_is_a_token_directly_following_itself(text, expected):
    assert has_repeat(text) is expected


def test_repeat_rate_and_distinct_n():
    texts = ["is a a pub", "a pub near the river", "near near"]
    assert repeat_rate(texts) == pytest.approx(2 / 3) and repeat_rate([]) == 0.0
    assert distinct_n(["a b a b"], 1) == pytest.approx(2 / 4)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # (a b), (b a), (a b)
    assert distinct_n(["a", "b"], 2) == 0.0  # no bigram at all


def test_prior_samples_depend_on_the_seed_only_and_leave_the_random_state_alone():
    tokenizer = build_tokenizer(["the eagle is a pub near the river .", "a coffee shop in the city centre ."])
    model = HRVAEModel(HRVAEConfig(vocab_size=len(tokenizer), embedding_size=8, hidden_size=8, latent_size=4,
                                   setting="inputless")).eval()
    torch.manual_seed(1)
    state = torch.get_rng_state()
    first = prior_sample_texts(model, tokenizer, 5, seed=3, max_new_tokens=6, do_sample=True)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(99)
    assert prior_sample_texts(model, tokenizer, 5, seed=3, max_new_tokens=6, do_sample=True) == first
    metrics = prior_sample_metrics(model, tokenizer, 5, seed=3, max_new_tokens=6)
    assert metrics["prior_samples"] == 5
    for decoding in ("greedy", "top_p"):
        assert 0 <= metrics[f"prior_{decoding}_repeat_rate"] <= 1
        assert 0 < metrics[f"prior_{decoding}_distinct_1"] <= 1
