"""What a reader sees in generated text: back-to-back repeats ("is a a pub", "near near", the stutter the paper's
Table 3 shows for vMF-VAE) and distinct-n, of greedy reconstructions and of prior samples.

The texts are the tokenizer's decodes: word tokens joined by spaces, so a token is a whitespace-separated word or
punctuation mark (". ." counts as a repeat).
"""

import torch

# How prior samples are decoded for these metrics: greedy (the paper's Table 3) and nucleus sampling.
PRIOR_DECODINGS = {"greedy": {}, "top_p": {"do_sample": True, "top_p": 0.9}}


def has_repeat(text: str) -> bool:
    """True when some token directly follows itself (`"a a pub"`); an empty text has none."""
    tokens = text.split()
    return any(first == second for first, second in zip(tokens, tokens[1:]))


def repeat_rate(texts: list[str]) -> float:
    """The share of `texts` with a token repeated back-to-back (0 for no texts)."""
    return sum(map(has_repeat, texts)) / len(texts) if texts else 0.0


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct-n (Li et al., 2016): distinct n-grams over all n-grams of `texts` (0 when there is none)."""
    grams = [tuple(tokens[i : i + n]) for tokens in map(str.split, texts) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def decode(tokenizer, ids) -> list[str]:
    return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]


@torch.no_grad()
def prior_sample_texts(model, tokenizer, num_samples: int, seed: int, max_new_tokens: int, batch_size: int = 256,
                       **generate_kwargs) -> list[str]:
    """`num_samples` decodes of z ~ p(z), seeded by `seed` (and `batch_size`: the batches draw in turn); the
    caller's random state is left as it was."""
    texts = []
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for start in range(0, num_samples, batch_size):
            latent = model.sample_prior(min(batch_size, num_samples - start))
            texts += decode(tokenizer, model.generate(latent=latent, max_new_tokens=max_new_tokens, **generate_kwargs))
    return texts


def prior_sample_metrics(model, tokenizer, num_samples: int, seed: int = 0, max_new_tokens: int = 60) -> dict:
    """Repeat rate and distinct-1/2 of `num_samples` prior samples, for each of `PRIOR_DECODINGS`:
    `{"prior_greedy_repeat_rate", "prior_greedy_distinct_1", ..., "prior_top_p_distinct_2", "prior_samples"}`."""
    metrics = {"prior_samples": num_samples}
    for name, settings in PRIOR_DECODINGS.items():
        texts = prior_sample_texts(model, tokenizer, num_samples, seed, max_new_tokens, **settings)
        metrics.update({f"prior_{name}_repeat_rate": repeat_rate(texts),
                        f"prior_{name}_distinct_1": distinct_n(texts, 1),
                        f"prior_{name}_distinct_2": distinct_n(texts, 2)})
    return metrics


__all__ = ["PRIOR_DECODINGS", "has_repeat", "repeat_rate", "distinct_n", "prior_sample_texts", "prior_sample_metrics"]
