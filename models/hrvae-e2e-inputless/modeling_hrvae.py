"""HR-VAE (Li et al., 2019) and its baselines: an LSTM VAE for text whose KL term can regularise the posterior of
every encoder step ("holistic") or of the last one only.

Shapes below use B = batch, T = padded length (`<s>` and `</s>` included), E = embedding_size,
H = hidden_size, L = num_layers, S = 2 * L * H (the `[h; c]` state over all layers), D = latent size, V = vocab.
This file imports only torch, transformers and sibling modules, so that a saved model loads with
`trust_remote_code=True` where `hf_hrvae` is not installed.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput, logging

from .configuration_hrvae import HRVAEConfig
from .decoders_hrvae import FastDropout, HRVAECNNDecoder, HRVAEDecoder
from .generation_hrvae import HRVAEGenerationMixin
from .latent_hrvae import gaussian_kl_per_dim, kl_annealing_weight, latent_distribution
from .losses_hrvae import neighbour_unlikelihood, prior_repeat_unlikelihood, repeat_unlikelihood, token_nll
from .recurrence_hrvae import lstm_with_cell_states

logger = logging.get_logger(__name__)


def real_positions(lengths: torch.Tensor, num_real: int | None = None):
    """The real positions of a right-padded batch in row-major order: `rows, positions`, each `(N_real,)`.

    `lengths (B,)` counts each row's real tokens; `num_real = lengths.sum()` if known (else read from the device).
    Unlike a boolean mask's `nonzero`, nothing here waits for the device when `num_real` is given.
    """
    if num_real is None:
        num_real = int(lengths.sum())
    rows = torch.repeat_interleave(torch.arange(lengths.shape[0], device=lengths.device), lengths,
                                   output_size=num_real)
    starts = lengths.cumsum(0) - lengths
    positions = torch.arange(num_real, device=lengths.device) - starts[rows]
    return rows, positions


def masked_mean(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The mean of `values (B, ...)` over the rows where `keep (B,)` is true, over dim 0; `values[keep].mean(0)`
    without the synchronisation a boolean index costs on a GPU (the count must be > 0: the input checks ensure it)."""
    keep = keep.view(-1, *([1] * (values.dim() - 1)))
    return torch.where(keep, values, 0).sum(0) / keep.sum().to(values.dtype)


@dataclass
class HRVAEOutput(ModelOutput):
    r"""
    Output of [`HRVAEModel.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, returned when `labels` is given):
            `reconstruction_loss + kl_weight * annealing(step) * KL term` (the KL term after free bits, if any);
            for HR-VAE the negative of Eq. 3, averaged over sentences; plus `neighbour_unlikelihood *
            unlikelihood_loss` and the like for `repeat_unlikelihood`, `prior_repeat_unlikelihood` when set.
        logits (`torch.FloatTensor` of shape `(B, T - 1, V)`):
            Decoder scores; `logits[:, t]` scores token `t + 1` of the input (the usual causal-LM shift, without
            the useless last position).
        reconstruction_loss (`torch.FloatTensor` of shape `()`):
            `-log p(x | z)` summed over the predicted tokens of each sentence (`</s>` included), averaged over sentences.
        kl_loss (`torch.FloatTensor` of shape `()`):
            The KL training term before free bits and annealing: holistic (KL(q_t || p) over each sentence's real
            steps, combined by `config.kl_reduction`; mean = Eq. 3) or of the last step only, averaged over sentences.
        kl_last (`torch.FloatTensor` of shape `()`):
            KL(q(z | x) || p(z)) of the latent the decoder actually uses (last real step), averaged over sentences.
        mu (`torch.FloatTensor` of shape `(B, D)`):
            Posterior location of the used latent (for vMF: the unnormalised mean direction).
        logvar (`torch.FloatTensor` of shape `(B, D)`, Gaussian only):
            Posterior log-variance of the used latent.
        latent (`torch.FloatTensor` of shape `(B, D)`):
            The z that was decoded (a sample in training, the posterior mean/mode in eval unless `sample_latent=True`).
        unlikelihood_loss (`torch.FloatTensor` of shape `()`, returned when `labels` is given and
            `config.neighbour_unlikelihood > 0`):
            The unlikelihood of each position's gold neighbours (`losses_hrvae.neighbour_unlikelihood`), summed over
            each sentence's positions, averaged over sentences; a training term, before its weight.
        repeat_unlikelihood_loss (`torch.FloatTensor` of shape `()`, returned when `labels` is given and
            `config.repeat_unlikelihood > 0`):
            The same for the decoder's own back-to-back repeats (`losses_hrvae.repeat_unlikelihood`).
        prior_repeat_unlikelihood_loss (`torch.FloatTensor` of shape `()`, returned when `labels` is given and
            `config.prior_repeat_unlikelihood > 0`):
            The same for the greedy output of one z ~ p(z) per 4 sentences (`losses_hrvae.prior_repeat_unlikelihood`),
            averaged over the draws.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    kl_loss: torch.FloatTensor | None = None
    kl_last: torch.FloatTensor | None = None
    mu: torch.FloatTensor | None = None
    logvar: torch.FloatTensor | None = None
    latent: torch.FloatTensor | None = None
    unlikelihood_loss: torch.FloatTensor | None = None
    repeat_unlikelihood_loss: torch.FloatTensor | None = None
    prior_repeat_unlikelihood_loss: torch.FloatTensor | None = None


class HRVAEEncoder(nn.Module):
    """LSTM encoder; `[h_t; c_t]` of every layer at every step goes through two linear layers to the posterior."""

    def __init__(self, config: HRVAEConfig):
        super().__init__()
        self.enc_embedding = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        sizes = [config.embedding_size] + [config.hidden_size] * (config.num_layers - 1)
        # One single-layer LSTM per layer: every layer's h_t is needed, which a multi-layer nn.LSTM does not return.
        self.layers = nn.ModuleList(nn.LSTM(size, config.hidden_size, batch_first=True) for size in sizes)
        self.dropout = FastDropout(config.dropout)
        self.to_mu = nn.Linear(config.state_size, config.latent_dim)
        has_variance = latent_distribution(config).has_variance  # vMF: a fixed kappa, no variance head
        self.to_logvar = nn.Linear(config.state_size, config.latent_dim) if has_variance else None
        # BN-VAE: batch norm on mu with a fixed scale gamma (set in _init_weights) and a learnt shift.
        self.mu_norm = nn.BatchNorm1d(config.latent_dim) if config.bn_vae else None
        if self.mu_norm is not None:
            self.mu_norm.weight.requires_grad_(False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """`input_ids (B, T)` -> the state after every step, `(B, T, S)` in the authors' layout
        `[h_1; c_1; h_2; c_2; ...]`. Right padding only affects the steps after a sentence's end."""
        inputs = self.dropout(self.enc_embedding(input_ids))
        states = []
        for index, lstm in enumerate(self.layers):
            hidden, cell = lstm_with_cell_states(lstm, inputs)  # see recurrence_hrvae.py for the two exact paths
            states += [hidden, cell]
            if index + 1 < len(self.layers):
                inputs = self.dropout(hidden)  # as nn.LSTM(dropout=p): between layers, not after the last
        return torch.cat(states, dim=-1)

    def posterior(self, state: torch.Tensor):
        """`state (..., S)` -> `mu, logvar`, each `(..., D)` (logvar None for vMF). BN-VAE's batch norm treats
        every row of `state` as one sample: pass real positions only."""
        mu = self.to_mu(state)
        if self.mu_norm is not None:
            mu = self.mu_norm(mu.reshape(-1, mu.shape[-1])).view_as(mu)
        return mu, (self.to_logvar(state) if self.to_logvar is not None else None)


class HRVAEPreTrainedModel(PreTrainedModel):
    config_class = HRVAEConfig
    base_model_prefix = "hrvae"
    main_input_name = "input_ids"
    _no_split_modules = ["HRVAEEncoder", "HRVAEDecoder", "HRVAECNNDecoder"]

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """As `PreTrainedModel.from_pretrained`, but without a `dtype` the model loads in float32, whatever its
        weights are stored in (a folder may store bfloat16 weights to halve its size: `examples/export_checkpoint.py
        --dtype bfloat16`); `dtype="auto"` keeps the stored dtype."""
        if kwargs.get("dtype") is None and kwargs.get("torch_dtype") is None:
            kwargs["dtype"] = torch.float32
        return super().from_pretrained(*args, **kwargs)

    def _init_weights(self, module):
        # PyTorch's own defaults, like the authors' code (transformers would give LSTMs Xavier weights and zero biases).
        # nn.Embedding.reset_parameters also zeroes the padding row.
        if isinstance(module, (nn.Linear, nn.Embedding, nn.LSTM, nn.Conv1d)):
            module.reset_parameters()
        elif isinstance(module, nn.BatchNorm1d):
            module.reset_parameters()
            nn.init.constant_(module.weight, self.config.bn_gamma)


class HRVAEModel(HRVAEGenerationMixin, HRVAEPreTrainedModel):
    r"""
    HR-VAE: a 2-layer LSTM encoder whose `[h_t; c_t]` at every step gives a posterior `N(mu_t, exp(logvar_t))`; the
    training KL is averaged over all real steps (Eq. 3); the decoder, a 2-layer LSTM, starts from z drawn from the
    last real step's posterior. The paper's baselines are configurations of the same class
    (`HRVAEConfig.from_preset`). See `docs/model.md` and `docs/baselines.md`.
    """

    def __init__(self, config: HRVAEConfig):
        if getattr(config, "model_type", None) != "hrvae":
            raise ValueError(
                f"HRVAEModel needs an HRVAEConfig, got a config of model_type={getattr(config, 'model_type', None)!r}."
            )
        config.validate_hrvae()
        super().__init__(config)
        self.encoder = HRVAEEncoder(config)
        self.decoder = HRVAECNNDecoder(config) if config.decoder_type == "cnn" else HRVAEDecoder(config)
        self.distribution = latent_distribution(config)  # GaussianLatent or VMFLatent (latent_hrvae.py)
        self.post_init()

    # ---------------------------------------------------------------- input checks
    def _check_inputs(self, input_ids, attention_mask=None, labels=None):
        """Validate and normalise a batch; returns `input_ids, attention_mask, labels` (possibly truncated) and
        the number of real tokens.

        All value checks are read back from the device in one transfer: this is the forward pass's only host
        synchronisation (it matters on a GPU, where every read-back stalls the queue of launched kernels; vMF's
        rejection sampler is the exception: it runs on the host). `tests/test_modeling.py` counts them.
        """
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(f"input_ids must be a LongTensor of shape (batch, length), got {shape}.")
        if input_ids.shape[1] == 0 or input_ids.shape[0] == 0:
            raise ValueError(f"input_ids is empty (shape {tuple(input_ids.shape)}).")
        if input_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}.")
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        elif attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids has {tuple(input_ids.shape)}."
            )
        if labels is not None and labels.shape != input_ids.shape:
            raise ValueError(f"labels has shape {tuple(labels.shape)} but input_ids has {tuple(input_ids.shape)}.")
        limit = self.config.max_decode_length
        mask = attention_mask.bool()
        left_padded = (mask[:, 1:] & ~mask[:, :-1]).any() if mask.shape[1] > 1 else mask.new_zeros(())
        low, high, left_padded, num_real = torch.stack(
            [input_ids.min(), input_ids.max(), left_padded.long(), mask[:, :limit].sum()]
        ).tolist()
        if low < 0 or high >= self.config.vocab_size:
            raise ValueError(
                f"input_ids holds ids in [{low}, {high}] but the vocabulary has {self.config.vocab_size} entries: "
                "was the model built with vocab_size=len(tokenizer)?"
            )
        if left_padded:
            raise ValueError(
                "attention_mask must be right-padded (ones, then zeros); set tokenizer.padding_side = 'right'."
            )
        if num_real == 0:  # (the count after truncation, which is 0 only when the whole mask is: right padding)
            raise ValueError("Every row of attention_mask is 0: there is no token to encode.")
        if input_ids.shape[1] > limit:
            logger.warning(
                f"Input of length {input_ids.shape[1]} is longer than config.max_decode_length={limit}: truncated."
            )
            input_ids, attention_mask = input_ids[:, :limit], attention_mask[:, :limit]
            labels = labels[:, :limit] if labels is not None else None
        return input_ids, attention_mask, labels, num_real

    # ---------------------------------------------------------------- the latent
    def encode_steps(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, num_real: int | None = None):
        """The used posterior and the KL training term.

        Returns `mu, logvar (B, D)` of the last real step (a row without real tokens gets mu = 0, logvar = 0) and
        `kl_terms`: the per-dimension KL `(B, D)` of the training term, reduced over time (holistic: mean or sum
        over the real steps; last: the last step's; last_beta: the last step's / n), or `None` for vMF (its KL is a constant). `attention_mask`
        must be right-padded; `num_real`, its number of ones, spares a read-back from the device when the caller
        knows it ([`_check_inputs`] returns it).
        """
        state = self.encoder(input_ids)
        lengths = attention_mask.sum(1)
        present = (lengths > 0).unsqueeze(1).to(state.dtype)
        holistic = self.config.kl_regularisation == "holistic" and self.distribution.has_variance
        if holistic:
            # The heads run on the real positions only (padding would cost as much as words and count for nothing),
            # gathered by index rather than by a boolean mask: an index of known size needs no synchronisation.
            rows, positions = real_positions(lengths, num_real)
            real_states = state.flatten(0, 1).index_select(0, rows * state.shape[1] + positions)
            mu_steps, logvar_steps = self.encoder.posterior(real_states)  # (N_real, D), row-major over (B, T)
            per_step = gaussian_kl_per_dim(mu_steps.float(), logvar_steps.float())  # fp32 also under autocast
            kl_terms = per_step.new_zeros(input_ids.shape[0], per_step.shape[-1]).index_add(0, rows, per_step)
            if self.config.kl_reduction == "mean":
                kl_terms = kl_terms / lengths.clamp(min=1).unsqueeze(1)
            last = (lengths.cumsum(0) - 1).clamp(min=0)  # each sentence's last real position among the rows
            mu, logvar = mu_steps[last], logvar_steps[last]
        else:
            last = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, state.shape[-1])
            mu, logvar = self.encoder.posterior(state.gather(1, last).squeeze(1))
            kl_terms = gaussian_kl_per_dim(mu.float(), logvar.float()) if logvar is not None else None
            if kl_terms is not None and self.config.kl_regularisation == "last_beta":  # the used KL at weight 1 / n
                kl_terms = kl_terms / lengths.clamp(min=1).unsqueeze(1).to(kl_terms.dtype)
        mu = mu * present
        logvar = logvar * present if logvar is not None else None
        kl_terms = kl_terms * present.to(kl_terms.dtype) if kl_terms is not None else None
        return mu, logvar, kl_terms

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """Posterior q(z | x) of the latent the decoder uses: `mu, logvar`, each `(B, D)` (logvar None for vMF)."""
        input_ids, attention_mask, _, num_real = self._check_inputs(input_ids, attention_mask)
        return self.encode_steps(input_ids, attention_mask, num_real)[:2]

    @torch.no_grad()
    def embed(self, sentences=None, tokenizer=None, input_ids=None, attention_mask=None, batch_size: int = 128):
        """Sentence embeddings: the posterior means E_q[z | x] of the used latent, `(N, D)` float32 on the model's
        device (for vMF-VAE: A_D(kappa) times the mean direction). Give `sentences` (a list of strings) with the model's `tokenizer`, or a
        tokenized batch (`input_ids`, `attention_mask`). Evaluation mode for the call (no dropout)."""
        if (sentences is None) == (input_ids is None):
            raise ValueError("embed(): give either sentences (with tokenizer) or input_ids, not both.")
        was_training = self.training
        self.eval()
        try:
            if input_ids is not None:
                return self.posterior_mean(*self.encode(input_ids, attention_mask)).float()
            if tokenizer is None:
                raise ValueError("embed(sentences): pass the model's tokenizer too (tokenizer=...).")
            if isinstance(sentences, str):
                raise TypeError("embed(): sentences must be a list of strings; for one sentence pass [sentence].")
            chunks = []
            for start in range(0, len(sentences), batch_size):
                batch = tokenizer(list(sentences[start : start + batch_size]), padding=True, truncation=True,
                                  return_tensors="pt").to(self.device)
                chunks.append(self.posterior_mean(*self.encode(batch["input_ids"], batch["attention_mask"])).float())
            return torch.cat(chunks) if chunks else torch.zeros(0, self.config.latent_dim, device=self.device)
        finally:
            self.train(was_training)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.enc_embedding

    @torch.no_grad()
    def resize_token_embeddings(self, new_num_tokens: int, pad_to_multiple_of: int | None = None) -> nn.Embedding:
        """Grow the vocabulary to `new_num_tokens` entries (ids appended at the end, as the tokenizer appends new
        words): the encoder's and the decoder's embeddings and the output layer. A new word was `<unk>` to this
        model, so its rows start as `<unk>`'s, and `<unk>`'s output bias is shared among it and the new words
        (each gets `log(1 / (n + 1))` of it): at the start the model assigns the new words together exactly the
        probability it gave `<unk>`. Updates `config.vocab_size`; returns the encoder's embedding."""
        old = self.config.vocab_size
        if pad_to_multiple_of:
            new_num_tokens = -(-new_num_tokens // pad_to_multiple_of) * pad_to_multiple_of
        if new_num_tokens < old:
            raise ValueError(f"resize_token_embeddings({new_num_tokens}): the model has {old} entries and only grows "
                             "its vocabulary (dropping rows would change the ids of the words it knows).")
        added, unk = new_num_tokens - old, self.config.unk_token_id
        if added == 0:
            return self.get_input_embeddings()
        for owner, name in ((self.encoder, "enc_embedding"), (self.decoder, "dec_embedding")):
            table = getattr(owner, name)
            grown = nn.Embedding(new_num_tokens, table.embedding_dim, padding_idx=table.padding_idx)
            grown.to(table.weight)
            grown.weight[:old] = table.weight
            grown.weight[old:] = table.weight[unk]
            setattr(owner, name, grown)
        layer = self.decoder.output_projection
        grown = nn.Linear(layer.in_features, new_num_tokens).to(layer.weight)
        grown.weight[:old], grown.weight[old:] = layer.weight, layer.weight[unk]
        grown.bias[:old] = layer.bias
        grown.bias[unk] = grown.bias[old:] = layer.bias[unk] - torch.log(torch.tensor(added + 1.0))
        self.decoder.output_projection = grown
        self.config.vocab_size = new_num_tokens
        return self.get_input_embeddings()

    def latent_kl(self, mu: torch.Tensor, logvar: torch.Tensor | None) -> torch.Tensor:
        """KL(q(z | x) || p(z)) of the used latent, `(B,)`."""
        return self.distribution.kl(mu, logvar)

    def holistic_kl(self, mu: torch.Tensor, kl_terms: torch.Tensor | None) -> torch.Tensor:
        """The KL training term per sentence `(B,)`, before free bits and annealing."""
        return self.distribution.kl(mu, None) if kl_terms is None else kl_terms.sum(-1)  # None: no variance head

    def sample_posterior(self, mu, logvar, num_samples: int = 1, generators=None) -> torch.Tensor:
        """`num_samples` draws of q(z | x): `(B, D) -> (B, num_samples, D)`; row b from `generators[b]` if given."""
        return self.distribution.sample(mu, logvar, num_samples, generators)

    def posterior_log_density(self, z, mu, logvar) -> torch.Tensor:
        """log q(z | x): `z (B, K, D)` -> `(B, K)`."""
        return self.distribution.log_density(z, mu, logvar)

    def prior_log_density(self, z) -> torch.Tensor:
        """log p(z): `(..., D) -> (...)` (N(0, I), or uniform on the sphere for vMF)."""
        return self.distribution.prior_log_density(z)

    def pairwise_posterior_log_density(self, z, mu, logvar) -> torch.Tensor:
        """log q(z_i | x_j) for all pairs: `z (N, D)`, `mu (M, D)` -> `(N, M)`."""
        return self.distribution.pairwise_log_density(z, mu, logvar)

    def posterior_mean(self, mu, logvar) -> torch.Tensor:
        """E_q[z] `(B, D)` (for active units): mu, or A_D(kappa) mu / |mu| for vMF."""
        return self.distribution.mean(mu, logvar)

    def posterior_mode(self, mu, logvar) -> torch.Tensor:
        """The point decoded in evaluation and reconstruction: the mean (Gaussian) or the mean direction (vMF)."""
        return self.distribution.mode(mu, logvar)

    def sample_prior(self, count: int) -> torch.Tensor:
        return self.distribution.sample_prior(count, device=self.device, dtype=self.dtype)

    def kl_weight_at(self, global_step: int | None) -> float:
        """`kl_weight` times the annealing schedule at `global_step` (1 without a step: evaluation)."""
        config = self.config
        if global_step is None:
            return config.kl_weight
        return config.kl_weight * kl_annealing_weight(
            config.kl_annealing, global_step, config.kl_anneal_steps, config.kl_anneal_k, config.kl_anneal_x0,
            config.kl_cycle_length, config.kl_cycle_ratio,
        )

    def kl_training_term(self, mu, kl_terms, present) -> torch.Tensor:
        """The KL term of the loss, `()`: the batch mean, after free bits (total or per dimension) if set."""
        if kl_terms is None:
            return masked_mean(self.holistic_kl(mu, kl_terms), present)
        per_dim = masked_mean(kl_terms, present)  # (D,) batch means
        bits = self.config.free_bits
        if bits > 0 and self.config.free_bits_per_dim:
            return per_dim.clamp(min=bits).sum()
        total = per_dim.sum()
        return total.clamp(min=bits) if bits > 0 else total

    # ---------------------------------------------------------------- decoding
    def decoder_inputs(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Word dropout on the decoder's inputs `(B, T')`: position 0 (`<s>`) is always kept.

        word_dropout = 1 (inputless) replaces every later word by `<unk>`, always; a value in (0, 1) replaces each
        word with that probability in training only (Bowman et al., 2016).
        """
        rate = self.config.word_dropout
        if rate >= 1.0:
            return self.inputless_inputs(input_ids)
        if rate > 0.0 and self.training:
            dropped = torch.rand(input_ids.shape, device=input_ids.device) < rate
            dropped[:, 0] = False
            return input_ids.masked_fill(dropped, self.config.unk_token_id)
        return input_ids

    def inputless_inputs(self, input_ids: torch.Tensor, position: int = 0) -> torch.Tensor:
        """The inputless rule, the one place it is written: the decoder sees `<s>`, then only `<unk>` — in
        training, evaluation and generation alike. `input_ids (B, T')` are the decoder's inputs from sentence
        position `position` on (generation feeds one position at a time); unchanged in the standard setting."""
        if self.config.word_dropout < 1.0:
            return input_ids
        hidden = torch.full_like(input_ids, self.config.unk_token_id)
        if position == 0:
            hidden[:, 0] = input_ids[:, 0]  # <s>
        return hidden

    def decode(self, latent: torch.Tensor, input_ids: torch.Tensor, repeats: int = 1) -> torch.Tensor:
        """Teacher-forced decoding of `input_ids (B, T)` from `latent (B * repeats, D)`: `logits (B * repeats, T - 1,
        V)`. `repeats` K > 1 (eval mode): rows `b K ... b K + K - 1` of `latent` all decode sentence b — the same
        as repeating every row of `input_ids` K times, with its shared work done once (importance sampling)."""
        if input_ids.shape[1] < 2:
            raise ValueError(
                f"Decoding needs at least 2 positions (<s> and a token to predict), got input_ids of shape "
                f"{tuple(input_ids.shape)}: tokenize with the HR-VAE tokenizer, which adds <s> and </s>."
            )
        if latent.shape[0] != input_ids.shape[0] * repeats:
            raise ValueError(
                f"latent has {latent.shape[0]} rows but input_ids has {input_ids.shape[0]} x repeats={repeats}."
            )
        state = self.decoder.initial_state(latent)
        logits, _ = self.decoder(self.decoder_inputs(input_ids[:, :-1]), state, repeats)
        return logits

    @staticmethod
    def targets(labels: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The tokens `logits` predicts, `(B, T - 1)`: `labels[:, 1:]`, -100 at padding."""
        return labels[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)

    @staticmethod
    def token_nll(logits: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """`-log p(x | z)` per sentence, `(B,)`: summed over the positions 1.. that are real and not -100."""
        targets = HRVAEModel.targets(labels, attention_mask)
        return token_nll(logits.flatten(0, 1), targets.flatten()).view_as(targets).sum(1)  # F.cross_entropy's values

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        sample_latent: bool | None = None,
        global_step: int | None = None,
        return_dict: bool | None = None,
    ) -> HRVAEOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(B, T)`): `<s> w_1 ... w_n </s>`, right-padded.
            attention_mask (`torch.LongTensor` of shape `(B, T)`, *optional*): 1 for real tokens; inferred from
                `pad_token_id` when omitted.
            labels (`torch.LongTensor` of shape `(B, T)`, *optional*): usually `input_ids`; positions 1.. are
                predicted, padded positions and -100 are ignored.
            sample_latent (`bool`, *optional*): decode a sample of q(z | x) (default in training) or its mean
                (default in eval).
            global_step (`int`, *optional*): the optimizer step, for `config.kl_annealing` (weight 1 when omitted).
        """
        input_ids, attention_mask, labels, num_real = self._check_inputs(input_ids, attention_mask, labels)
        mu, logvar, kl_terms = self.encode_steps(input_ids, attention_mask, num_real)
        sample = self.training if sample_latent is None else sample_latent
        latent = self.sample_posterior(mu, logvar)[:, 0] if sample else self.posterior_mode(mu, logvar)
        logits = self.decode(latent, input_ids)

        present = attention_mask.sum(1) > 0  # rows of padding only take no part in the averages
        kl_loss = masked_mean(self.holistic_kl(mu, kl_terms), present)
        kl_last = masked_mean(self.latent_kl(mu, logvar), present)
        loss = reconstruction_loss = None
        unlikelihoods = {}  # the training terms not in the paper: name -> value before its weight
        if labels is not None:
            reconstruction_loss = masked_mean(self.token_nll(logits, labels, attention_mask), present)
            loss = reconstruction_loss + self.kl_weight_at(global_step) * self.kl_training_term(mu, kl_terms, present)
            targets, draws = self.targets(labels, attention_mask), max(1, input_ids.shape[0] // 4)
            terms = {"neighbour": lambda: masked_mean(neighbour_unlikelihood(logits, targets), present),
                     "repeat": lambda: masked_mean(repeat_unlikelihood(logits, targets), present),
                     "prior_repeat": lambda: prior_repeat_unlikelihood(  # one z ~ p(z) per 4 sentences
                         self.decode(self.sample_prior(draws), input_ids[:draws]), self.config.eos_token_id).mean()}
            for name, term in terms.items():
                if getattr(self.config, f"{name}_unlikelihood") > 0:
                    unlikelihoods[name] = term()
                    loss = loss + getattr(self.config, f"{name}_unlikelihood") * unlikelihoods[name]
        output = HRVAEOutput(
            loss=loss,
            logits=logits,
            reconstruction_loss=reconstruction_loss,
            kl_loss=kl_loss,
            kl_last=kl_last,
            mu=mu,
            logvar=logvar,
            latent=latent,
            unlikelihood_loss=unlikelihoods.get("neighbour"),
            repeat_unlikelihood_loss=unlikelihoods.get("repeat"),
            prior_repeat_unlikelihood_loss=unlikelihoods.get("prior_repeat"),
        )
        return output if (return_dict is None or return_dict) else output.to_tuple()


__all__ = ["HRVAEModel", "HRVAEPreTrainedModel", "HRVAEOutput", "HRVAEEncoder"]
