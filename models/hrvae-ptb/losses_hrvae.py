"""The reconstruction term's token NLL, with a cheaper backward pass on the CPU.

`F.cross_entropy` keeps the log-softmax of the logits and, in its backward pass, allocates and fills a
gradient of the logits' size with zeros, scatters into it and runs the log-softmax backward: several passes
over (and fresh allocations of) a tensor of `tokens x vocabulary` floats — 97 MB for a PTB batch. [`TokenNLL`]
computes the same values and gradient in one pass over the saved log-softmax, in place: the softmax is
`exp(log_softmax)`, and the gradient is `g * (softmax - onehot)`. On this project's 2-core CPU that saves about
50 ms of the 0.42 s the output layer and the loss take, forward and backward, for a PTB batch
(`examples/benchmarks/benchmark_nll.py`, docs/performance.md). [`token_nll`] takes it on the CPU when
gradients are needed and outside autocast, and `F.cross_entropy` everywhere else (on a GPU its fused kernels
need fewer launches).

Only torch here (the file travels with saved models for `trust_remote_code`).
"""

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

IGNORE_INDEX = -100


class TokenNLL(torch.autograd.Function):
    """`-log softmax(logits)[target]` per row: `logits (N, V)`, `targets (N,)` -> `(N,)`, 0 where the target is
    -100. Equals `F.cross_entropy(logits, targets, ignore_index=-100, reduction="none")`, values and gradient.

    The backward pass turns the saved log-softmax into the gradient in place, so it can run once: a second
    backward pass through the same graph (`retain_graph=True`) raises.
    """

    @staticmethod
    def forward(ctx, logits, targets):
        log_probs = torch.log_softmax(logits, dim=-1)
        keep = targets != IGNORE_INDEX
        index = targets.masked_fill(~keep, 0).unsqueeze(1)  # other negative or too large ids fail in gather
        nll = torch.where(keep, -log_probs.gather(1, index).squeeze(1), 0)
        ctx.save_for_backward(log_probs, index, keep)
        ctx.used = False
        return nll

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_nll):
        if ctx.used:
            raise RuntimeError(
                "TokenNLL's backward pass reuses its saved log-softmax and cannot run twice through the same graph "
                "(retain_graph=True): compute the loss again, or set hf_hrvae.losses_hrvae.FORCE_TOKEN_NLL = False "
                "to use F.cross_entropy."
            )
        ctx.used = True
        log_probs, index, keep = ctx.saved_tensors
        weight = (grad_nll * keep).unsqueeze(1)  # (N, 1)
        grad = log_probs.exp_().mul_(weight)  # softmax * g, in the saved buffer
        grad.scatter_add_(1, index, -weight)  # - onehot * g
        return grad, None


# None: decide per call (see use_token_nll); True / False: force (tests, benchmarks).
FORCE_TOKEN_NLL: bool | None = None


def use_token_nll(logits: torch.Tensor) -> bool:
    """Whether [`TokenNLL`] runs instead of `F.cross_entropy`: on the CPU, outside autocast, when a gradient will
    be needed."""
    if FORCE_TOKEN_NLL is not None:
        return FORCE_TOKEN_NLL
    return (logits.device.type == "cpu" and not torch.is_autocast_enabled("cpu") and torch.is_grad_enabled()
            and logits.requires_grad)


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """`F.cross_entropy(logits, targets, ignore_index=-100, reduction="none")`: `(N, V), (N,) -> (N,)`."""
    if use_token_nll(logits):
        return TokenNLL.apply(logits, targets)
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="none")


def neighbour_unlikelihood(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Token-level unlikelihood (Welleck et al., 2020) of each position's gold neighbours, per sentence:
    `logits (B, T, V)`, `targets (B, T)` (-100: ignored) -> `(B,)`.

    The sum over positions t of `-log(1 - p_t(y_{t-1}))` and `-log(1 - p_t(y_{t+1}))`, each where that neighbour is
    a real token other than y_t itself: 0 when the model gives the neighbours no probability. An inputless decoder
    sees no words, so at the edge between two words it tends to give both the same one ("a a pub", "pub pub"); this
    term lowers exactly that mass. Not in the paper (`HRVAEConfig.neighbour_unlikelihood`).
    """
    keep = targets != IGNORE_INDEX
    previous = F.pad(targets[:, :-1], (1, 0), value=IGNORE_INDEX)
    following = F.pad(targets[:, 1:], (0, 1), value=IGNORE_INDEX)
    log_norm = _log_norm(logits)
    return sum(_unlikelihood(logits, log_norm, neighbour, keep & (neighbour != IGNORE_INDEX) & (neighbour != targets))
               for neighbour in (previous, following))


def repeat_unlikelihood(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Token-level unlikelihood of the decoder's own back-to-back repeats, per sentence: `logits (B, T, V)`,
    `targets (B, T)` (-100: ignored) -> `(B,)`.

    Where the top tokens of two neighbouring real positions are the same word w, the sum of `-log(1 - p_t(w))` over
    those of the two positions t whose gold token is not w. An inputless decoder's inputs do not depend on the
    words it emits, so these top tokens are its greedy output for the decoded z, and the term lowers exactly the
    repeats that greedy decoding would print, wherever they fall (also in a word the gold sentence lacks, which
    `neighbour_unlikelihood` does not reach). Not in the paper (`HRVAEConfig.repeat_unlikelihood`).
    """
    keep = targets != IGNORE_INDEX
    top = logits.detach().argmax(-1)  # (B, T)
    pair = (top[:, 1:] == top[:, :-1]) & keep[:, 1:] & keep[:, :-1]  # (B, T - 1): positions t, t + 1 repeat
    in_pair = F.pad(pair, (1, 0), value=False) | F.pad(pair, (0, 1), value=False)
    return _unlikelihood(logits, _log_norm(logits), top, in_pair & (top != targets))


def prior_repeat_unlikelihood(logits: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """Token-level unlikelihood of the back-to-back repeats in a decoder's top tokens with no gold sentence beside
    them (an inputless decoder's greedy output for z drawn from the prior), per sentence: `logits (B, T, V)` ->
    `(B,)`. The sum of `-log(1 - p_t(w))` over the positions t, up to the first `</s>` among the top tokens, whose
    top token w is the one before it: every copy of a word but the first. Not in the paper
    (`HRVAEConfig.prior_repeat_unlikelihood`).
    """
    top = logits.detach().argmax(-1)  # (B, T)
    ended = top == eos_token_id
    up_to_end = (ended.cumsum(1) - ended.long()) == 0  # through the first </s>
    again = F.pad(top[:, 1:] == top[:, :-1], (1, 0), value=False)
    return _unlikelihood(logits, _log_norm(logits), top, again & up_to_end)


def _log_norm(logits: torch.Tensor) -> torch.Tensor:
    """`logsumexp` over the vocabulary, in fp32 at least (bf16 logits under autocast): `(B, T, V)` -> `(B, T)`."""
    return torch.logsumexp(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)


def _unlikelihood(logits, log_norm, candidates, use) -> torch.Tensor:
    """`-log(1 - p_t(candidates_t))` summed over the positions where `use`: `logits (B, T, V)`, `log_norm` its
    [`_log_norm`], `candidates, use (B, T)` -> `(B,)`."""
    log_p = logits.gather(-1, candidates.clamp(min=0).unsqueeze(-1)).squeeze(-1).to(log_norm.dtype) - log_norm
    # p <= 1 - 1e-6: a finite term (13.8 nats at most) and gradient where the model is sure of the candidate
    term = -torch.log1p(-log_p.exp().clamp(max=1 - 1e-6))
    return torch.where(use, term, 0).sum(1)


__all__ = ["TokenNLL", "neighbour_unlikelihood", "prior_repeat_unlikelihood", "repeat_unlikelihood", "token_nll",
           "use_token_nll"]
