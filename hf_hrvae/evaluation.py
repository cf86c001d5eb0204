"""Evaluation of HR-VAE: valid bounds per sentence.

Every random draw is seeded by (seed, sentence index), so the numbers do not depend on the batch size, the batch
composition or the number of processes.
"""

import math

import torch
from tqdm.auto import tqdm

from .modeling_hrvae import gaussian_kl


def sentence_noise(indices: torch.Tensor, num_samples: int, dim: int, seed: int, device=None, dtype=None):
    """Standard normal noise `(B, num_samples, dim)`; row b depends only on (seed, indices[b])."""
    rows = [
        torch.randn(num_samples, dim, generator=torch.Generator().manual_seed(seed * 1_000_003 + int(index)))
        for index in indices.tolist()
    ]
    return torch.stack(rows).to(device=device, dtype=dtype)


@torch.no_grad()
def elbo_terms(model, input_ids, attention_mask, indices, seed: int = 0) -> dict:
    """Per-sentence terms of the ELBO, each `(B,)`.

    `reconstruction`: -log p(x | z), z one sample of q(z | x) of the latent the decoder uses;
    `kl`: KL(q(z | x) || p(z)) of that latent; `kl_holistic`: the training term of Eq. 3;
    `num_tokens`: the tokens each sentence predicts (words and `</s>`).
    """
    mu_steps, logvar_steps, mu, logvar = model.encode_steps(input_ids, attention_mask)
    noise = sentence_noise(indices, 1, mu.shape[-1], seed, mu.device, mu.dtype)[:, 0]
    latent = mu + noise * torch.exp(0.5 * logvar)
    logits = model.decode(latent, input_ids)
    return {
        "reconstruction": model.token_nll(logits, input_ids, attention_mask),
        "kl": gaussian_kl(mu, logvar),
        "kl_holistic": model.holistic_kl(mu_steps, logvar_steps, attention_mask),
        "num_tokens": (attention_mask.sum(1) - 1).to(mu.dtype),
    }


def summarize_elbo(terms: dict) -> dict:
    """Per-sentence averages, `elbo_nll = reconstruction + kl`, `elbo_ppl = exp(sum elbo_nll / sum tokens)`."""
    count = terms["reconstruction"].numel()
    elbo = terms["reconstruction"] + terms["kl"]
    total_tokens = terms["num_tokens"].sum().item()
    return {
        "num_sentences": count,
        "num_tokens": int(total_tokens),
        "reconstruction": terms["reconstruction"].mean().item(),
        "kl": terms["kl"].mean().item(),
        "kl_holistic": terms["kl_holistic"].mean().item(),
        "elbo_nll": elbo.mean().item(),
        "elbo_ppl": math.exp(elbo.sum().item() / total_tokens),
    }


@torch.no_grad()
def evaluate_elbo(model, dataloader, accelerator, seed: int = 0, description: str = "eval") -> dict:
    """ELBO terms over a whole (prepared) dataloader, gathered across processes with `gather_for_metrics`."""
    unwrapped = accelerator.unwrap_model(model)
    was_training = unwrapped.training
    unwrapped.eval()
    collected = {}
    for batch in tqdm(dataloader, desc=description, disable=not accelerator.is_local_main_process, leave=False):
        input_ids, attention_mask, _ = unwrapped._check_inputs(batch["input_ids"], batch["attention_mask"])
        terms = elbo_terms(unwrapped, input_ids, attention_mask, batch["index"], seed)
        for name, value in accelerator.gather_for_metrics(terms).items():
            collected.setdefault(name, []).append(value.double().cpu())
    unwrapped.train(was_training)
    return summarize_elbo({name: torch.cat(values) for name, values in collected.items()})


__all__ = ["sentence_noise", "elbo_terms", "summarize_elbo", "evaluate_elbo"]
