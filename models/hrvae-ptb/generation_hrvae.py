"""Generation for HR-VAE: reconstruct, decode a given latent, sample from the prior, interpolate.

A self-contained loop (transformers 5's `PreTrainedModel` has no `GenerationMixin`, and transformers 5 has no
public beam scorer): the decoder's LSTM state is carried from step to step, so every new token costs one LSTM step,
never a re-run of the prefix; beam search reorders that state with the beams. Sampling and the repetition tricks
reuse transformers' public logits processors. Imports only torch, transformers and nothing of hf_hrvae but siblings.
"""

import math
from dataclasses import dataclass

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.utils import ModelOutput, logging

logger = logging.get_logger(__name__)

INTERPOLATION_METHODS = ("linear", "slerp")


class NoBackToBackRepeatLogitsProcessor(LogitsProcessor):
    """Forbids each row's last token as its next one: no token directly follows itself ("a a pub"). A decoding
    trick (`generate(no_back_to_back_repeats=True)`), to report beside plain decoding; unlike
    `no_repeat_ngram_size=1` it lets a word come back later in the sentence."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return scores.scatter(1, input_ids[:, -1:], float("-inf"))


@dataclass
class HRVAEGenerateOutput(ModelOutput):
    r"""
    Args:
        sequences (`torch.LongTensor` of shape `(N, 1 + steps)`): `<s>`, then the generated tokens; rows that ended
            with `</s>` are padded with `pad_token_id`.
        scores (`tuple` of `torch.FloatTensor` of shape `(N, V)`): processed scores of every step, when asked for.
        logits (`tuple` of `torch.FloatTensor` of shape `(N, V)`): raw decoder logits of every step, when asked for.
        latent (`torch.FloatTensor` of shape `(N, D)`): the decoded latents.
        sequences_scores (`torch.FloatTensor` of shape `(N,)`): beam search only: each returned sequence's
            log-probability (after the logits processors) divided by its length ** `length_penalty`.
    """

    sequences: torch.LongTensor | None = None
    scores: tuple | None = None
    logits: tuple | None = None
    latent: torch.FloatTensor | None = None
    sequences_scores: torch.FloatTensor | None = None


def slerp(start: torch.Tensor, end: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between `start, end (D,)` at `weights (K,)` -> `(K, D)`; linear when they are parallel."""
    cosine = torch.dot(start, end) / (start.norm() * end.norm()).clamp(min=1e-12)
    omega = torch.arccos(cosine.clamp(-1.0, 1.0))
    weights = weights.unsqueeze(1)
    if omega.abs() < 1e-4:
        return (1 - weights) * start + weights * end
    return (torch.sin((1 - weights) * omega) * start + torch.sin(weights * omega) * end) / torch.sin(omega)


class HRVAEGenerationMixin:
    """`generate` and `interpolate` for `HRVAEModel` (needs `encode`, `posterior_mode`, `sample_posterior`,
    `sample_prior`, `decoder` and `config` of the model)."""

    def _latent_for_generation(self, input_ids, attention_mask, latent, num_return_sequences, sample_latent):
        if latent is not None and input_ids is not None:
            raise ValueError("Pass either input_ids (to reconstruct) or latent (to decode it), not both.")
        if input_ids is not None:
            mu, logvar = self.encode(input_ids, attention_mask)
            latent = self.sample_posterior(mu, logvar)[:, 0] if sample_latent else self.posterior_mode(mu, logvar)
        elif latent is not None:
            if latent.dim() == 1:
                latent = latent.unsqueeze(0)
            if latent.dim() != 2 or latent.shape[1] != self.config.latent_dim:
                raise ValueError(
                    f"latent must have shape (batch, {self.config.latent_dim}), got {tuple(latent.shape)}."
                )
            latent = latent.to(device=self.device, dtype=self.dtype)
        else:  # the prior
            return self.sample_prior(num_return_sequences)
        return latent.repeat_interleave(num_return_sequences, dim=0)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        latent: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        logits_processor: LogitsProcessorList | None = None,
        sample_latent: bool = False,
        return_dict_in_generate: bool = False,
        output_scores: bool = False,
        output_logits: bool = False,
        **kwargs,
    ):
        r"""
        Generate sentences from the posterior of `input_ids` (reconstruction), from a given `latent`, or from the
        prior (N(0, I); uniform on the sphere for vMF) when neither is given.

        Args:
            input_ids, attention_mask (`torch.LongTensor` of shape `(B, T)`, *optional*): sentences to reconstruct
                from their posterior mean (a posterior sample with `sample_latent=True`).
            latent (`torch.FloatTensor` of shape `(B, D)`, *optional*): latents to decode.
            generation_config (`GenerationConfig`, *optional*): defaults for the keyword arguments below.
            logits_processor (`LogitsProcessorList`, *optional*): extra processors, applied after the built-in ones.
            kwargs: `max_new_tokens` (default `max_decode_length - 1`), `do_sample` (False: greedy), `temperature`,
                `top_k`, `top_p`, `num_return_sequences` (per input; the number of prior samples without input),
                `num_beams` (> 1: beam search over given sentences or latents, `num_return_sequences <= num_beams`
                best hypotheses per input, ranked by log-probability / length ** `length_penalty`, default 1.0;
                the length counts the generated tokens, `</s>` included), `repetition_penalty` (> 0; 1.0: none) and
                `no_repeat_ngram_size` (0: none), transformers' processors of the same names, and
                `no_back_to_back_repeats` (bool, [`NoBackToBackRepeatLogitsProcessor`]): decoding tricks, to report
                beside plain greedy decoding, not instead of it.

        Returns:
            `torch.LongTensor` of shape `(N, 1 + steps)` starting with `<s>`, or an [`HRVAEGenerateOutput`] when
            `return_dict_in_generate=True`.
        """
        allowed = ("max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "num_return_sequences",
                   "num_beams", "length_penalty", "repetition_penalty", "no_repeat_ngram_size",
                   "no_back_to_back_repeats")
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise ValueError(f"generate() got unsupported arguments {unknown}; supported: {list(allowed)}.")
        settings = {}
        if generation_config is not None:
            settings = {key: getattr(generation_config, key, None) for key in allowed}
            settings = {key: value for key, value in settings.items() if value is not None}
        settings.update(kwargs)
        config = self.config
        for name in ("max_new_tokens", "num_return_sequences", "top_k", "num_beams"):
            value = settings.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"generate(): {name} must be a positive integer, got {value!r}.")
        ngram = settings.get("no_repeat_ngram_size")
        if ngram is not None and (isinstance(ngram, bool) or not isinstance(ngram, int) or ngram < 0):
            raise ValueError(f"generate(): no_repeat_ngram_size must be an integer >= 0, got {ngram!r}.")
        penalty = settings.get("repetition_penalty")
        if penalty is not None and (isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or penalty <= 0):
            raise ValueError(f"generate(): repetition_penalty must be a number > 0, got {penalty!r}.")
        no_back_to_back = settings.get("no_back_to_back_repeats", False)
        if not isinstance(no_back_to_back, bool):
            raise ValueError(f"generate(): no_back_to_back_repeats must be True or False, got {no_back_to_back!r}.")
        max_new_tokens = settings.get("max_new_tokens") or config.max_decode_length - 1
        if max_new_tokens > config.max_decode_length - 1:
            logger.warning(
                f"max_new_tokens={max_new_tokens} exceeds config.max_decode_length - 1 = "
                f"{config.max_decode_length - 1}: truncated to it."
            )
            max_new_tokens = config.max_decode_length - 1
        num_return_sequences = settings.get("num_return_sequences") or 1
        do_sample = bool(settings.get("do_sample", False))
        num_beams = settings.get("num_beams") or 1
        if num_beams > 1:
            if do_sample:
                raise ValueError("generate(): beam search (num_beams > 1) is deterministic; do_sample=True with "
                                 "beams is not supported.")
            if input_ids is None and latent is None:
                raise ValueError("generate(): beam search decodes given sentences (input_ids) or latents; for the "
                                 "prior, pass latent=model.sample_prior(n).")
            if num_return_sequences > num_beams:
                raise ValueError(f"generate(): num_return_sequences ({num_return_sequences}) must be <= num_beams "
                                 f"({num_beams}).")
            if output_scores or output_logits:
                raise ValueError("generate(): per-step scores and logits are not recorded for beam search; "
                                 "return_dict_in_generate=True gives each sequence's score (sequences_scores).")

        processors = LogitsProcessorList()
        if penalty is not None and penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(float(penalty)))
        if ngram:
            processors.append(NoRepeatNGramLogitsProcessor(ngram))
        if no_back_to_back:
            processors.append(NoBackToBackRepeatLogitsProcessor())
        if do_sample:
            temperature = settings.get("temperature")
            if temperature is not None and temperature != 1.0:
                processors.append(TemperatureLogitsWarper(temperature))
            if settings.get("top_k"):
                processors.append(TopKLogitsWarper(settings["top_k"]))
            if settings.get("top_p") is not None and settings["top_p"] < 1.0:
                processors.append(TopPLogitsWarper(settings["top_p"]))
        processors.extend(logits_processor or [])

        if num_beams > 1:
            latent = self._latent_for_generation(input_ids, attention_mask, latent, 1, sample_latent)
            sequences, sequences_scores = beam_search(
                self, latent, num_beams, num_return_sequences, max_new_tokens, processors,
                settings.get("length_penalty", 1.0))
            if not return_dict_in_generate:
                return sequences
            return HRVAEGenerateOutput(sequences=sequences, sequences_scores=sequences_scores,
                                       latent=latent.repeat_interleave(num_return_sequences, dim=0))

        latent = self._latent_for_generation(input_ids, attention_mask, latent, num_return_sequences, sample_latent)
        count = latent.shape[0]
        state = self.decoder.initial_state(latent)
        sequences = torch.full((count, 1), config.bos_token_id, dtype=torch.long, device=latent.device)
        finished = torch.zeros(count, dtype=torch.bool, device=latent.device)
        all_scores, all_logits = [], []
        inputs = sequences
        for _ in range(max_new_tokens):
            position = sequences.shape[1] - 1
            logits, state = self.decoder(self.inputless_inputs(inputs, position), state, position=position)
            logits = logits[:, -1].float()
            scores = processors(sequences, logits)
            if do_sample:
                next_tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
            else:
                next_tokens = scores.argmax(dim=-1)
            next_tokens = next_tokens.masked_fill(finished, config.pad_token_id)
            sequences = torch.cat([sequences, next_tokens.unsqueeze(1)], dim=1)
            if output_scores:
                all_scores.append(scores)
            if output_logits:
                all_logits.append(logits)
            finished |= next_tokens == config.eos_token_id
            if finished.all():
                break
            inputs = next_tokens.unsqueeze(1)
        if not return_dict_in_generate:
            return sequences
        return HRVAEGenerateOutput(
            sequences=sequences,
            scores=tuple(all_scores) if output_scores else None,
            logits=tuple(all_logits) if output_logits else None,
            latent=latent,
        )

    @torch.no_grad()
    def interpolate(
        self,
        a_ids: torch.Tensor,
        b_ids: torch.Tensor,
        steps: int = 5,
        method: str = "linear",
        **generate_kwargs,
    ) -> torch.Tensor:
        """Greedy decodes of `steps` points between the posterior means of two sentences (Bowman et al., 2016).

        `a_ids`, `b_ids`: one sentence each, `(T,)` or `(1, T)`. `method`: "linear" or "slerp".
        Returns `torch.LongTensor` of shape `(steps, 1 + length)`; row 0 decodes a, the last row decodes b.
        """
        if method not in INTERPOLATION_METHODS:
            raise ValueError(f"method must be one of {INTERPOLATION_METHODS}, got {method!r}.")
        if not isinstance(steps, int) or steps < 2:
            raise ValueError(f"steps must be an integer >= 2, got {steps!r}.")
        ends = []
        for ids in (a_ids, b_ids):
            ids = ids.unsqueeze(0) if ids.dim() == 1 else ids
            if ids.shape[0] != 1:
                raise ValueError(f"interpolate takes one sentence per end, got a batch of {ids.shape[0]}.")
            ends.append(self.posterior_mode(*self.encode(ids.to(self.device)))[0])
        weights = torch.linspace(0, 1, steps, device=self.device, dtype=ends[0].dtype)
        if method == "slerp":
            points = slerp(ends[0], ends[1], weights)
        else:
            points = (1 - weights).unsqueeze(1) * ends[0] + weights.unsqueeze(1) * ends[1]
        return self.generate(latent=points, **generate_kwargs)


def beam_search(model, latent, num_beams: int, num_return_sequences: int, max_new_tokens: int, processors,
                length_penalty: float = 1.0):
    """Beam search from each latent `(B, D)`: `(sequences (B * num_return_sequences, 1 + steps), scores (B * R,))`.

    Each input keeps `num_beams` running hypotheses, their decoder state reordered with them (one decoder step per
    new token per beam). A hypothesis ends with `</s>`; its score is its summed log-probability (after the logits
    processors, applied to the log-softmax) divided by its length ** `length_penalty`. An input is done when it has
    `num_beams` ended hypotheses and no running one can beat the worst of them any more (for `length_penalty > 0`
    bounded at `max_new_tokens`); hypotheses still running after `max_new_tokens` are ranked with the ended ones.
    """
    config, device = model.config, latent.device
    batch, beams = latent.shape[0], num_beams
    state = model.decoder.initial_state(latent.repeat_interleave(beams, dim=0))
    beam_scores = torch.full((batch, beams), -math.inf, device=device)
    beam_scores[:, 0] = 0.0  # the first step expands one beam per input: no duplicate hypotheses
    sequences = torch.full((batch * beams, 1), config.bos_token_id, dtype=torch.long, device=device)
    ended = [[] for _ in range(batch)]  # (score, token list without <s>) per input
    done = [False] * batch
    inputs = sequences
    for step in range(max_new_tokens):
        logits, state = model.decoder(model.inputless_inputs(inputs, step), state, position=step)
        log_probs = processors(sequences, torch.log_softmax(logits[:, -1].float(), dim=-1))
        vocab, length = log_probs.shape[-1], step + 1
        candidates = (beam_scores.view(-1, 1) + log_probs).view(batch, beams * vocab)
        top_scores, top_ids = candidates.topk(min(2 * beams, beams * vocab), dim=1)
        next_scores = torch.full((batch, beams), -math.inf, device=device)
        next_beams = torch.zeros(batch, beams, dtype=torch.long, device=device)
        next_tokens = torch.full((batch, beams), config.pad_token_id, dtype=torch.long, device=device)
        scores_list, ids_list = top_scores.tolist(), top_ids.tolist()
        for row in range(batch):
            if done[row]:
                continue
            kept = 0
            for rank, (score, index) in enumerate(zip(scores_list[row], ids_list[row])):
                beam, token = divmod(index, vocab)
                if score == -math.inf:
                    break
                if token == config.eos_token_id:
                    if rank < beams:  # as transformers: an ended hypothesis counts only among the top num_beams
                        tokens = sequences[row * beams + beam, 1:].tolist() + [token]
                        ended[row].append((score / length**length_penalty, tokens))
                    continue
                next_scores[row, kept], next_beams[row, kept], next_tokens[row, kept] = score, beam, token
                kept += 1
                if kept == beams:
                    break
            ended[row] = sorted(ended[row], key=lambda item: -item[0])[:beams]
            best_running = next_scores[row, 0].item()
            if len(ended[row]) == beams:
                bound_length = max_new_tokens if length_penalty > 0 else length
                best_possible = best_running / bound_length**length_penalty
                done[row] = best_running == -math.inf or ended[row][-1][0] >= best_possible
            elif best_running == -math.inf:
                done[row] = True
        if all(done):
            break
        rows = (torch.arange(batch, device=device) * beams).unsqueeze(1) + next_beams
        rows = rows.view(-1)
        sequences = torch.cat([sequences.index_select(0, rows), next_tokens.view(-1, 1)], dim=1)
        state = model.decoder.reorder_state(state, rows)
        beam_scores = next_scores
        inputs = next_tokens.view(-1, 1)
    for row in range(batch):  # hypotheses still running when the steps ran out
        if not done[row]:
            for beam in range(beams):
                score = beam_scores[row, beam].item()
                if score > -math.inf:
                    tokens = sequences[row * beams + beam, 1:].tolist()
                    ended[row].append((score / len(tokens) ** length_penalty, tokens))
            ended[row] = sorted(ended[row], key=lambda item: -item[0])
    chosen = [hypothesis for row in range(batch) for hypothesis in ended[row][:num_return_sequences]]
    width = max(len(tokens) for _, tokens in chosen)
    out = torch.full((len(chosen), 1 + width), config.pad_token_id, dtype=torch.long, device=device)
    out[:, 0] = config.bos_token_id
    for index, (_, tokens) in enumerate(chosen):
        out[index, 1 : 1 + len(tokens)] = torch.tensor(tokens, dtype=torch.long, device=device)
    return out, torch.tensor([score for score, _ in chosen], device=device)


__all__ = ["HRVAEGenerationMixin", "HRVAEGenerateOutput", "slerp", "beam_search"]
