"""Evaluation of HR-VAE: valid bounds, importance-weighted NLL, MI, active units, BLEU, and the paper's protocol.

Every random draw is seeded by (seed, stream, sentence index), so the numbers do not depend on the batch size,
the batch composition or the number of processes. See docs/evaluation.md for the definitions.
"""

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .models.hrvae.latent_hrvae import gaussian_pairwise_log_density
from .text_quality import prior_sample_metrics, repeat_rate

# Independent noise streams per sentence.
RECONSTRUCTION_STREAM, IW_STREAM, MI_STREAM = 0, 1, 2


def sentence_generators(indices: torch.Tensor, seed: int, stream: int) -> list:
    """One CPU generator per sentence, seeded by (seed, stream, dataset index)."""
    return [torch.Generator().manual_seed((seed * 7919 + stream) * 1_000_003 + int(i)) for i in indices.tolist()]


def sentence_noise(indices, num_samples, dim, seed, stream=RECONSTRUCTION_STREAM):
    """The standard normal noise `(B, num_samples, dim)` a Gaussian posterior sample of these sentences uses."""
    return torch.stack([torch.randn(num_samples, dim, generator=g) for g in sentence_generators(indices, seed, stream)])


@torch.no_grad()
def elbo_terms(model, input_ids, attention_mask, indices, seed: int = 0, posterior=None, paper_protocol=True) -> dict:
    """Per-sentence terms, each `(B,)`.

    `reconstruction`: -log p(x | z), z one sample of q(z | x) of the latent the decoder uses;
    `kl`: KL(q(z | x) || p(z)) of that latent; `kl_holistic`: the KL training term (Eq. 3 for HR-VAE);
    `num_tokens`: the tokens each sentence predicts (words and `</s>`);
    `paper_reconstruction`: -log p(x | z = posterior mean) (the authors' protocol, not a bound).
    `posterior`: the `encode_steps` output, when the caller has it already.
    """
    mu, logvar, kl_terms = posterior if posterior is not None else model.encode_steps(input_ids, attention_mask)
    generators = sentence_generators(indices, seed, RECONSTRUCTION_STREAM)
    latent = model.sample_posterior(mu, logvar, 1, generators)[:, 0]
    sampled = model.token_nll(model.decode(latent, input_ids), input_ids, attention_mask)
    terms = {
        "reconstruction": sampled,
        "kl": model.latent_kl(mu, logvar),
        "kl_holistic": model.holistic_kl(mu, kl_terms),
        "num_tokens": (attention_mask.sum(1) - 1).to(mu.dtype),
    }
    if paper_protocol:  # a second decoder pass, at the posterior mean
        mode = model.posterior_mode(mu, logvar)
        terms["paper_reconstruction"] = model.token_nll(model.decode(mode, input_ids), input_ids, attention_mask)
    return terms


@torch.no_grad()
def iw_log_weights(model, input_ids, attention_mask, mu, logvar, indices, num_samples, seed, rows_per_chunk=2048):
    """`log p(x | z_k) + log p(z_k) - log q(z_k | x)` for k samples per sentence: `(B, num_samples)`.

    The samples are decoded in chunks (all sentences x a slice of the samples expanded along the batch, one fused
    decoder call each) so memory stays bounded by `rows_per_chunk` decoded sentences.
    """
    batch = mu.shape[0]
    generators = sentence_generators(indices, seed, IW_STREAM)
    per_chunk = max(1, min(num_samples, rows_per_chunk // batch))
    weights = []
    for start in range(0, num_samples, per_chunk):
        count = min(per_chunk, num_samples - start)
        latent = model.sample_posterior(mu, logvar, count, generators)  # (B, count, D); the streams continue
        log_q = model.posterior_log_density(latent, mu, logvar)
        log_prior = model.prior_log_density(latent)
        ids = input_ids.repeat_interleave(count, dim=0)
        mask = attention_mask.repeat_interleave(count, dim=0)
        logits = model.decode(latent.flatten(0, 1), input_ids, repeats=count)  # the sentence's shared work once
        nll = model.token_nll(logits, ids, mask).view(batch, count)
        weights.append(log_prior - log_q - nll)
    return torch.cat(weights, dim=1)


def iw_nll_from_log_weights(log_weights: torch.Tensor) -> torch.Tensor:
    """`-log (1/k) sum_k w_k` per sentence, stably: `(B, k) -> (B,)`."""
    return -(torch.logsumexp(log_weights, dim=1) - math.log(log_weights.shape[1]))


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> int:
    """Dimensions d with Cov_x(E_q[z_d]) > threshold (Burda et al., 2016), over all sentences: `mu (N, D)`."""
    return int((mu.double().var(dim=0) > threshold).sum())


def mutual_information(mu, logvar, latent, pairwise_log_density=gaussian_pairwise_log_density) -> float:
    """I_q(x; z) (He et al., 2019) over the whole set: `mu, logvar, latent (N, D)`, one z_i ~ q(z | x_i) each.

    `E_i[log q(z_i | x_i) - log q(z_i)]`, the aggregate posterior `q(z) = (1/N) sum_j q(z | x_j)` over the N
    sentences. The first term is the Monte Carlo one on the same z_i, so the estimate never exceeds log N.
    `pairwise_log_density(z, mu, logvar) -> (n, N)`: Gaussian by default (`HRVAEModel.pairwise_posterior_log_density`
    covers vMF).
    """
    mu, latent = mu.double(), latent.double()
    logvar = logvar.double() if logvar is not None else None
    count = mu.shape[0]
    total = 0.0
    for start in range(0, count, 1024):  # row blocks of the (N, N) matrix log q(z_i | x_j)
        pairwise = pairwise_log_density(latent[start : start + 1024], mu, logvar)
        own = pairwise.diagonal(offset=start)
        total += (own - torch.logsumexp(pairwise, dim=1) + math.log(count)).sum().item()
    return total / count


def corpus_bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU of space-tokenised strings (sacrebleu, `tokenize="none"`: the texts are our word tokens)."""
    import sacrebleu

    return sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none").score


def summarize(terms: dict, iw_samples: int | None = None) -> dict:
    """Per-sentence averages of the gathered per-sentence terms; perplexities over all predicted tokens."""
    count = terms["reconstruction"].numel()
    tokens = terms["num_tokens"].sum().item()
    elbo = terms["reconstruction"] + terms["kl"]
    summary = {
        "num_sentences": count,
        "num_tokens": int(tokens),
        "reconstruction": terms["reconstruction"].mean().item(),
        "kl": terms["kl"].mean().item(),
        "kl_holistic": terms["kl_holistic"].mean().item(),
        "elbo_nll": elbo.mean().item(),
        "elbo_ppl": math.exp(elbo.sum().item() / tokens),
    }
    if "iw_nll" in terms:
        summary.update(iw_nll=terms["iw_nll"].mean().item(), iw_samples=iw_samples,
                       ppl=math.exp(terms["iw_nll"].sum().item() / tokens))
    return summary


def paper_protocol_metrics(terms: dict) -> dict:
    """What the authors' code reports (z = posterior mean; time-averaged KL; n + 2 tokens per sentence)."""
    nll = terms["paper_reconstruction"] + terms["kl_holistic"]
    words_plus_two = terms["num_tokens"] + 1  # n + 1 predicted tokens, plus <s>
    return {
        "label": "comparison only, not a bound",
        "nll": nll.mean().item(),
        "kl": terms["kl_holistic"].mean().item(),
        "ppl": math.exp(nll.sum().item() / words_plus_two.sum().item()),
    }


@torch.no_grad()
def evaluate_elbo(model, dataloader, accelerator, seed: int = 0, description: str = "eval") -> dict:
    """ELBO terms over a whole (prepared) dataloader, gathered across processes with `gather_for_metrics`."""
    results = evaluate_model(model, dataloader, accelerator, seed=seed, description=description, paper_protocol=False)
    return {"num_sentences": results["num_sentences"], "num_tokens": results["num_tokens"], **results["valid"]}


@torch.no_grad()
def evaluate_model(model, dataloader, accelerator, seed=0, iw_samples=0, tokenizer=None, description="eval",
                   rows_per_chunk=2048, max_new_tokens=None, paper_protocol=True, num_beams=1,
                   mutual_info=True, decoding_tricks=None) -> dict:
    """Every metric over a (prepared) dataloader whose batches carry `input_ids`, `attention_mask`, `index`.

    `iw_samples=0` skips the importance-weighted NLL; `mutual_info=False` skips MI (an (N, N) matrix of
    densities, the other slow metric); `tokenizer=None` skips BLEU; `num_beams`: the reconstructions
    of BLEU (from the posterior mean) by greedy decoding (1) or beam search. `decoding_tricks`, e.g.
    `{"repetition_penalty": 1.5}`: `generate()` arguments for a second set of reconstructions, whose BLEU and
    repeat rate are reported beside the plain ones, never instead. Returns
    `{"num_sentences", "num_tokens", "valid": {...}, "paper_protocol": {...}}`, and `"decoding_tricks": {...}`
    when asked for.
    """
    unwrapped = accelerator.unwrap_model(model)
    was_training = unwrapped.training
    unwrapped.eval()

    def reconstruct(input_ids, attention_mask, **tricks):  # gathered across processes, decoded to text
        generated = unwrapped.generate(input_ids=input_ids, attention_mask=attention_mask,
                                       max_new_tokens=max_new_tokens or input_ids.shape[1] + 10,
                                       num_beams=num_beams, **tricks)
        padded = accelerator.pad_across_processes(generated, dim=1, pad_index=unwrapped.config.pad_token_id)
        return tokenizer.batch_decode(accelerator.gather_for_metrics(padded), skip_special_tokens=True)

    collected, hypotheses, references, tricked = {}, [], [], []
    sentences = len(dataloader.dataset) if hasattr(dataloader, "dataset") else None
    progress = tqdm(total=sentences, desc=description, unit="sent", disable=not accelerator.is_local_main_process,
                    leave=False)
    for batch in dataloader:
        input_ids, attention_mask, _, num_real = unwrapped._check_inputs(batch["input_ids"], batch["attention_mask"])
        posterior = unwrapped.encode_steps(input_ids, attention_mask, num_real)
        mu, logvar, _ = posterior
        terms = elbo_terms(unwrapped, input_ids, attention_mask, batch["index"], seed, posterior, paper_protocol)
        terms["mu"] = mu
        if logvar is not None:
            terms["logvar"] = logvar
        generators = sentence_generators(batch["index"], seed, MI_STREAM)
        terms["mi_latent"] = unwrapped.sample_posterior(mu, logvar, 1, generators)[:, 0]
        if iw_samples:
            log_weights = iw_log_weights(unwrapped, input_ids, attention_mask, mu, logvar, batch["index"],
                                         iw_samples, seed, rows_per_chunk)
            terms["iw_nll"] = iw_nll_from_log_weights(log_weights)
        if tokenizer is not None:
            hypotheses += reconstruct(input_ids, attention_mask)
            if decoding_tricks:
                tricked += reconstruct(input_ids, attention_mask, **decoding_tricks)
            gathered_inputs = accelerator.gather_for_metrics(
                accelerator.pad_across_processes(input_ids, dim=1, pad_index=unwrapped.config.pad_token_id))
            references += tokenizer.batch_decode(gathered_inputs, skip_special_tokens=True)
        for name, value in accelerator.gather_for_metrics(terms).items():
            collected.setdefault(name, []).append(value.double().cpu())
        progress.update(input_ids.shape[0] * accelerator.num_processes)
    progress.close()
    unwrapped.train(was_training)
    terms = {name: torch.cat(values) for name, values in collected.items()}
    valid = summarize(terms, iw_samples or None)
    logvar = terms.get("logvar")
    if mutual_info:
        valid["mutual_info"] = mutual_information(terms["mu"], logvar, terms["mi_latent"],
                                                  unwrapped.pairwise_posterior_log_density)
    valid["active_units"] = active_units(unwrapped.posterior_mean(terms["mu"], logvar))
    if tokenizer is not None:
        valid["bleu"] = corpus_bleu(hypotheses, references)
        valid["bleu_num_beams"] = num_beams
        valid["reconstruction_repeat_rate"] = repeat_rate(hypotheses)  # "is a a pub": the stutter of Table 3
        valid["reference_repeat_rate"] = repeat_rate(references)  # the data's own rate, to compare with
    counts = {"num_sentences": valid.pop("num_sentences"), "num_tokens": valid.pop("num_tokens")}
    results = {
        **counts,
        "valid": valid,
        "paper_protocol": paper_protocol_metrics(terms) if paper_protocol else None,
    }
    if tokenizer is not None and decoding_tricks:
        results["decoding_tricks"] = {"label": "beside plain decoding, never instead", **decoding_tricks,
                                      "bleu": corpus_bleu(tricked, references), "bleu_num_beams": num_beams,
                                      "reconstruction_repeat_rate": repeat_rate(tricked)}
    return results




@dataclass
class EvaluationArguments:
    """Flags of `examples/evaluate.py`."""

    model_name_or_path: str = field(metadata={"help": "a folder written by examples/train.py, or a Hub id"})
    dataset_name: str = field(metadata={"help": "ptb, e2e, a Hub id, or a local folder such as ../shared/data/e2e_nlg"})
    split: str = field(default="test", metadata={"choices": ["train", "validation", "test"]})
    text_column: str | None = None
    iw_samples: int = field(default=500, metadata={"help": "importance samples per sentence (He et al. 2019: 500)"})
    max_samples: int | None = None
    batch_size: int = field(default=32, metadata={"help": "sentences per batch (x iw_samples decoded rows)"})
    rows_per_chunk: int = field(default=2048, metadata={"help": "decoded rows per fused call: bounds memory"})
    seed: int = 0
    no_bleu: bool = field(default=False, metadata={"help": "skip the greedy reconstructions and BLEU"})
    num_beams: int = field(default=1, metadata={"help": "reconstructions for BLEU: 1 greedy, k > 1 beam search"})
    repetition_penalty: float = field(default=1.0, metadata={
        "help": "not 1: also report BLEU and repeats of reconstructions decoded with this penalty (a decoding trick, "
                "reported beside the plain numbers, never instead)"})
    no_repeat_ngram_size: int = field(default=0, metadata={
        "help": "> 0: as --repetition_penalty, for reconstructions that never repeat an n-gram of this size"})
    no_back_to_back_repeats: bool = field(default=False, metadata={
        "help": "as --repetition_penalty, for reconstructions in which no token directly follows itself"})
    prior_samples: int = field(default=1000, metadata={
        "help": "prior samples decoded (greedy and top-p 0.9) for their repeat rate and distinct-1/2; 0: none"})
    output_file: str | None = None

    def __post_init__(self):
        if self.iw_samples < 0 or self.batch_size < 1 or self.rows_per_chunk < 1 or self.num_beams < 1:
            raise ValueError("--iw_samples must be >= 0, --batch_size, --rows_per_chunk and --num_beams >= 1.")
        if self.prior_samples < 0:
            raise ValueError(f"--prior_samples must be >= 0, got {self.prior_samples}.")
        if self.repetition_penalty <= 0 or self.no_repeat_ngram_size < 0:
            raise ValueError("--repetition_penalty must be > 0 (1: none) and --no_repeat_ngram_size >= 0 (0: none).")
        if self.no_bleu and self.decoding_tricks():
            raise ValueError("--repetition_penalty, --no_repeat_ngram_size and --no_back_to_back_repeats change "
                             "the reconstructions of BLEU; they do nothing with --no_bleu.")

    def decoding_tricks(self) -> dict:
        """The `generate()` arguments of the tricks asked for: `{}` when none."""
        tricks = {}
        if self.repetition_penalty != 1.0:
            tricks["repetition_penalty"] = self.repetition_penalty
        if self.no_repeat_ngram_size:
            tricks["no_repeat_ngram_size"] = self.no_repeat_ngram_size
        if self.no_back_to_back_repeats:
            tricks["no_back_to_back_repeats"] = True
        return tricks


def run_evaluation(args: EvaluationArguments, command: str | None = None) -> dict:
    """Load a model and a split, evaluate every metric, write `args.output_file` (main process). `command`: the
    command line to record."""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    from .training.data import load_text_splits, tokenize_splits
    from .loading import load_pretrained

    accelerator = Accelerator()
    model, tokenizer = load_pretrained(args.model_name_or_path)
    model.eval()
    with accelerator.main_process_first():
        # a single file is the split to evaluate; a folder or a corpus needs only that split
        files = {args.split: args.dataset_name} if Path(args.dataset_name).is_file() else None
        splits = load_text_splits(args.dataset_name, args.text_column, args.max_samples, args.max_samples,
                                  data_files=files, required=(args.split,))
        data = tokenize_splits(splits, tokenizer)[args.split]
    # Sorted by length to cut padding; the per-sentence seeds make the order irrelevant to the numbers.
    data = data.sort("length").remove_columns("length")
    loader = DataLoader(data, batch_size=args.batch_size, collate_fn=DataCollatorWithPadding(tokenizer))
    model, loader = accelerator.prepare(model, loader)
    start = time.time()
    results = evaluate_model(model, loader, accelerator, seed=args.seed, iw_samples=args.iw_samples,
                             tokenizer=None if args.no_bleu else tokenizer, description=f"{args.split}",
                             rows_per_chunk=args.rows_per_chunk, num_beams=args.num_beams,
                             decoding_tricks=args.decoding_tricks())
    if args.prior_samples:
        results["valid"].update(prior_sample_metrics(accelerator.unwrap_model(model), tokenizer, args.prior_samples,
                                                     seed=args.seed))
    from .hub import weights_sha256

    results = {"split": args.split, "model_sha256": weights_sha256(args.model_name_or_path), **results,
               "wall_time_s": round(time.time() - start, 1), "command": command,
               "num_processes": accelerator.num_processes, "arguments": asdict(args)}
    if args.output_file and accelerator.is_main_process:
        Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output_file).write_text(json.dumps(results, indent=1))
    return results


__all__ = [
    "sentence_noise",
    "elbo_terms",
    "iw_log_weights",
    "iw_nll_from_log_weights",
    "active_units",
    "mutual_information",
    "corpus_bleu",
    "summarize",
    "paper_protocol_metrics",
    "evaluate_elbo",
    "evaluate_model",
    "EvaluationArguments",
    "run_evaluation",
]
