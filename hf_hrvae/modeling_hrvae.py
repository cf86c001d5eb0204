"""HR-VAE (Li et al., 2019): an LSTM VAE for text whose KL term regularises the posterior of every encoder step.

Shapes below use B = batch, T = padded length (`<s>` and `</s>` included), E = embedding_size,
H = hidden_size, L = num_layers, S = 2 * L * H (the `[h; c]` state over all layers), D = latent size, V = vocab.
This file imports only torch, transformers and sibling modules, so that a saved model loads with
`trust_remote_code=True` where `hf_hrvae` is not installed.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput, logging

from .configuration_hrvae import HRVAEConfig
from .generation_hrvae import HRVAEGenerationMixin

logger = logging.get_logger(__name__)


@dataclass
class HRVAEOutput(ModelOutput):
    r"""
    Output of [`HRVAEModel.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, returned when `labels` is given):
            `reconstruction_loss + kl_weight * kl_loss`, the negative of Eq. 3 averaged over sentences.
        logits (`torch.FloatTensor` of shape `(B, T - 1, V)`):
            Decoder scores; `logits[:, t]` scores token `t + 1` of the input (the usual causal-LM shift, without
            the useless last position).
        reconstruction_loss (`torch.FloatTensor` of shape `()`):
            `-log p(x | z)` summed over the predicted tokens of each sentence (`</s>` included), averaged over sentences.
        kl_loss (`torch.FloatTensor` of shape `()`):
            The holistic training term: KL(q_t || N(0, I)) over each sentence's real time steps, combined by
            `config.kl_reduction` (mean = Eq. 3), averaged over sentences.
        kl_last (`torch.FloatTensor` of shape `()`):
            KL(q(z | x) || N(0, I)) of the latent the decoder actually uses (last real step), averaged over sentences.
        mu, logvar (`torch.FloatTensor` of shape `(B, D)`):
            Posterior of the used latent.
        latent (`torch.FloatTensor` of shape `(B, D)`):
            The z that was decoded (a sample in training, the mean in eval unless `sample_latent=True`).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    kl_loss: torch.FloatTensor | None = None
    kl_last: torch.FloatTensor | None = None
    mu: torch.FloatTensor | None = None
    logvar: torch.FloatTensor | None = None
    latent: torch.FloatTensor | None = None


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the last dimension: `(..., D) -> (...)`."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def linear_recurrence(decay: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:
    """Solve `c_t = decay_t * c_{t-1} + drive_t` with `c_{-1} = 0` along dim 1 by a parallel (Hillis-Steele) scan.

    `ceil(log2 T)` tensor steps instead of T Python steps; only products of values in (0, 1) and sums, so it is as
    stable as the sequential loop. Shapes: `(B, T, H), (B, T, H) -> (B, T, H)`.
    """
    length = drive.shape[1]
    shift = 1
    while shift < length:
        drive = torch.cat([drive[:, :shift], drive[:, shift:] + decay[:, shift:] * drive[:, :-shift]], dim=1)
        decay = torch.cat([decay[:, :shift], decay[:, shift:] * decay[:, :-shift]], dim=1)
        shift *= 2
    return drive


def lstm_cell_states(lstm: nn.LSTM, inputs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """Recover every cell state c_t of a one-layer, zero-initialised `nn.LSTM` from its inputs and hidden states.

    The fused LSTM returns only h_t for all t. The gates of every step are recomputed at once from (x_t, h_{t-1});
    then `c_t = f_t * c_{t-1} + i_t * g_t` is a linear recurrence solved by [`linear_recurrence`].
    Shapes: `inputs (B, T, in)`, `hidden (B, T, H) -> (B, T, H)`.
    """
    previous = F.pad(hidden[:, :-1], (0, 0, 1, 0))  # h_{t-1}, with h_{-1} = 0
    gates = F.linear(inputs, lstm.weight_ih_l0, lstm.bias_ih_l0) + F.linear(previous, lstm.weight_hh_l0, lstm.bias_hh_l0)
    input_gate, forget_gate, cell_gate, _ = gates.chunk(4, dim=-1)  # PyTorch's gate order: i, f, g, o
    return linear_recurrence(torch.sigmoid(forget_gate), torch.sigmoid(input_gate) * torch.tanh(cell_gate))


class HRVAEEncoder(nn.Module):
    """LSTM encoder with a Gaussian posterior q_t(z | x_{<=t}) at every time step (Eq. 3)."""

    def __init__(self, config: HRVAEConfig):
        super().__init__()
        self.enc_embedding = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        sizes = [config.embedding_size] + [config.hidden_size] * (config.num_layers - 1)
        # One single-layer LSTM per layer: every layer's h_t is needed, which a multi-layer nn.LSTM does not return.
        self.layers = nn.ModuleList(nn.LSTM(size, config.hidden_size, batch_first=True) for size in sizes)
        self.dropout = nn.Dropout(config.dropout)
        self.to_mu = nn.Linear(config.state_size, config.latent_dim)
        self.to_logvar = nn.Linear(config.state_size, config.latent_dim)

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`input_ids (B, T)` -> `mu, logvar`, each `(B, T, D)`: the posterior after every step.

        Right padding only affects the steps after a sentence's end, which the caller masks.
        """
        inputs = self.dropout(self.enc_embedding(input_ids))
        states = []
        for index, lstm in enumerate(self.layers):
            hidden, _ = lstm(inputs)
            states += [hidden, lstm_cell_states(lstm, inputs, hidden)]
            if index + 1 < len(self.layers):
                inputs = self.dropout(hidden)  # as nn.LSTM(dropout=p): between layers, not after the last
        # The authors' layout: [h_1; c_1; h_2; c_2; ...] over layers at every step, (B, T, S).
        state = torch.cat(states, dim=-1)
        return self.to_mu(state), self.to_logvar(state)


class HRVAEDecoder(nn.Module):
    """LSTM decoder started from z, with the top layer's part of its initial state concatenated to every input."""

    def __init__(self, config: HRVAEConfig):
        super().__init__()
        self.num_layers = config.num_layers
        self.hidden_size = config.hidden_size
        self.dec_embedding = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.latent_to_state = (
            nn.Linear(config.latent_dim, config.state_size) if config.latent_size is not None else None
        )
        self.lstm = nn.LSTM(
            config.embedding_size + 2 * config.hidden_size,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.output_projection = nn.Linear(config.hidden_size, config.vocab_size)

    def initial_state(self, latent: torch.Tensor):
        """`latent (B, D)` -> `((h_0, c_0), condition)`: `h_0, c_0 (L, B, H)` and `condition (B, 2H)`."""
        state = latent if self.latent_to_state is None else self.latent_to_state(latent)
        per_layer = state.view(state.shape[0], self.num_layers, 2 * self.hidden_size).transpose(0, 1)
        hidden = per_layer[..., : self.hidden_size].contiguous()
        cell = per_layer[..., self.hidden_size :].contiguous()
        return (hidden, cell), per_layer[-1]

    def forward(self, input_ids: torch.Tensor, state, condition: torch.Tensor):
        """`input_ids (B, T')`, the LSTM `state`, `condition (B, 2H)` -> `logits (B, T', V)`, the new state."""
        inputs = self.dropout(self.dec_embedding(input_ids))
        inputs = torch.cat([inputs, condition.unsqueeze(1).expand(-1, inputs.shape[1], -1)], dim=-1)
        outputs, state = self.lstm(inputs, state)
        return self.output_projection(outputs), state


class HRVAEPreTrainedModel(PreTrainedModel):
    config_class = HRVAEConfig
    base_model_prefix = "hrvae"
    main_input_name = "input_ids"
    _no_split_modules = ["HRVAEEncoder", "HRVAEDecoder"]

    def _init_weights(self, module):
        # PyTorch's own defaults, like the authors' code (transformers would give LSTMs Xavier weights and zero biases).
        # nn.Embedding.reset_parameters also zeroes the padding row.
        if isinstance(module, (nn.Linear, nn.Embedding, nn.LSTM)):
            module.reset_parameters()


class HRVAEModel(HRVAEGenerationMixin, HRVAEPreTrainedModel):
    r"""
    HR-VAE: a 2-layer LSTM encoder whose `[h_t; c_t]` at every step gives a posterior `N(mu_t, exp(logvar_t))`; the
    training KL is averaged over all real steps (Eq. 3); the decoder, a 2-layer LSTM, starts from z drawn from the
    last real step's posterior. See `docs/model.md`.
    """

    def __init__(self, config: HRVAEConfig):
        if getattr(config, "model_type", None) != "hrvae":
            raise ValueError(
                f"HRVAEModel needs an HRVAEConfig, got a config of model_type={getattr(config, 'model_type', None)!r}."
            )
        config.validate_hrvae()
        super().__init__(config)
        self.encoder = HRVAEEncoder(config)
        self.decoder = HRVAEDecoder(config)
        self.post_init()

    # ---------------------------------------------------------------- input checks
    def _check_inputs(self, input_ids, attention_mask=None, labels=None):
        """Validate and normalise a batch; returns `input_ids, attention_mask, labels` (possibly truncated)."""
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
        low, high = int(input_ids.min()), int(input_ids.max())
        if low < 0 or high >= self.config.vocab_size:
            raise ValueError(
                f"input_ids holds ids in [{low}, {high}] but the vocabulary has {self.config.vocab_size} entries: "
                "was the model built with vocab_size=len(tokenizer)?"
            )
        mask = attention_mask.bool()
        if (mask[:, 1:] & ~mask[:, :-1]).any():
            raise ValueError(
                "attention_mask must be right-padded (ones, then zeros); set tokenizer.padding_side = 'right'."
            )
        if not mask.any():
            raise ValueError("Every row of attention_mask is 0: there is no token to encode.")
        limit = self.config.max_decode_length
        if input_ids.shape[1] > limit:
            logger.warning(
                f"Input of length {input_ids.shape[1]} is longer than config.max_decode_length={limit}: truncated."
            )
            input_ids, attention_mask = input_ids[:, :limit], attention_mask[:, :limit]
            labels = labels[:, :limit] if labels is not None else None
        return input_ids, attention_mask, labels

    # ---------------------------------------------------------------- building blocks
    def encode_steps(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """Posterior at every step and the used (last real step) one.

        Returns `mu_steps, logvar_steps (B, T, D)`, `mu, logvar (B, D)`. A row without real tokens gets the prior
        (mu = 0, logvar = 0).
        """
        mu_steps, logvar_steps = self.encoder(input_ids)
        lengths = attention_mask.sum(1)
        last = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, mu_steps.shape[-1])
        present = (lengths > 0).unsqueeze(1).to(mu_steps.dtype)
        mu = mu_steps.gather(1, last).squeeze(1) * present
        logvar = logvar_steps.gather(1, last).squeeze(1) * present
        return mu_steps, logvar_steps, mu, logvar

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """Posterior q(z | x) of the latent the decoder uses: `mu, logvar`, each `(B, D)`."""
        input_ids, attention_mask, _ = self._check_inputs(input_ids, attention_mask)
        return self.encode_steps(input_ids, attention_mask)[2:]

    def holistic_kl(self, mu_steps, logvar_steps, attention_mask) -> torch.Tensor:
        """The KL term of Eq. 3 per sentence, `(B,)`: per-step KLs over real steps, mean or sum by the config."""
        mask = attention_mask.to(mu_steps.dtype)
        total = (gaussian_kl(mu_steps, logvar_steps) * mask).sum(1)
        if self.config.kl_reduction == "sum":
            return total
        return total / mask.sum(1).clamp(min=1)

    def decoder_inputs(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Word dropout on the decoder's inputs `(B, T')`: position 0 (`<s>`) is always kept.

        word_dropout = 1 (inputless) replaces every later word by `<unk>`, always; a value in (0, 1) replaces each
        word with that probability in training only (Bowman et al., 2016).
        """
        rate = self.config.word_dropout
        if rate >= 1.0:
            dropped = torch.ones_like(input_ids, dtype=torch.bool)
        elif rate > 0.0 and self.training:
            dropped = torch.rand(input_ids.shape, device=input_ids.device) < rate
        else:
            return input_ids
        dropped[:, 0] = False
        return input_ids.masked_fill(dropped, self.config.unk_token_id)

    def decode(self, latent: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Teacher-forced decoding of `input_ids (B, T)` from `latent (B, D)`: `logits (B, T - 1, V)`."""
        state, condition = self.decoder.initial_state(latent)
        logits, _ = self.decoder(self.decoder_inputs(input_ids[:, :-1]), state, condition)
        return logits

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    @staticmethod
    def token_nll(logits: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """`-log p(x | z)` per sentence, `(B,)`: summed over the positions 1.. that are real and not -100."""
        targets = labels[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)
        nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="none")
        return nll.view_as(targets).sum(1)

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        sample_latent: bool | None = None,
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
        """
        input_ids, attention_mask, labels = self._check_inputs(input_ids, attention_mask, labels)
        mu_steps, logvar_steps, mu, logvar = self.encode_steps(input_ids, attention_mask)
        sample = self.training if sample_latent is None else sample_latent
        latent = self.reparameterize(mu, logvar) if sample else mu
        logits = self.decode(latent, input_ids)

        present = attention_mask.sum(1) > 0  # rows of padding only take no part in the averages
        kl_loss = self.holistic_kl(mu_steps, logvar_steps, attention_mask)[present].mean()
        kl_last = gaussian_kl(mu, logvar)[present].mean()
        loss = reconstruction_loss = None
        if labels is not None:
            reconstruction_loss = self.token_nll(logits, labels, attention_mask)[present].mean()
            loss = reconstruction_loss + self.config.kl_weight * kl_loss
        output = HRVAEOutput(
            loss=loss,
            logits=logits,
            reconstruction_loss=reconstruction_loss,
            kl_loss=kl_loss,
            kl_last=kl_last,
            mu=mu,
            logvar=logvar,
            latent=latent,
        )
        return output if (return_dict is None or return_dict) else output.to_tuple()


__all__ = ["HRVAEModel", "HRVAEPreTrainedModel", "HRVAEOutput", "HRVAEEncoder", "HRVAEDecoder"]
