"""Decoders of the HR-VAE family: the LSTM decoder (HR-VAE, VAE-LSTM-base, vMF-VAE) and the dilated CNN (VAE-CNN).

Both share one interface, so training and generation need not know which they run:
`initial_state(latent)` -> a state; `forward(input_ids (B, T'), state)` -> `logits (B, T', V)`, the new state.
Generation calls `forward` with one token at a time and the carried state: O(1) work per new token.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .recurrence_hrvae import library_lstm_layer, lstm_layer, use_stepwise_lstm


class FastDropout(nn.Dropout):
    """`nn.Dropout` with its mask drawn as `rand >= p`: the same distribution, about 3x faster on CPU than the
    Bernoulli sampler `F.dropout` uses (measured on (128, 43, 512) inputs). Nothing changes in eval mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand_like(x) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))


class PositionEmbedding(nn.Embedding):
    """A learnt embedding of the decoder's input positions (`HRVAEConfig.decoder_positions`), initialised to zero:
    a model given it starts as the same function. Positions past the last row share the last row."""

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)

    def forward(self, start: int, length: int) -> torch.Tensor:
        """The embeddings of positions `start, ..., start + length - 1`: `(length, E)`."""
        positions = torch.arange(start, start + length, device=self.weight.device).clamp(max=self.num_embeddings - 1)
        return super().forward(positions)


class HRVAEDecoder(nn.Module):
    """LSTM decoder started from z, with the top layer's part of its initial state concatenated to every input.

    Default wiring (the authors'): z is `[h_1; c_1; ...; h_L; c_L]`, the initial state itself; with `latent_size`
    set, `latent_to_state` maps z to it. State: `((h, c) each (L, B, H), condition (B, 2H))`. With
    `config.decoder_positions`, a [`PositionEmbedding`] is added to the input embeddings.
    """

    def __init__(self, config):
        super().__init__()
        self.num_layers = config.num_layers
        self.hidden_size = config.hidden_size
        self.dec_embedding = nn.Embedding(config.vocab_size, config.decoder_embedding_dim,
                                          padding_idx=config.pad_token_id)
        self.latent_to_state = (
            nn.Linear(config.latent_dim, config.state_size) if config.latent_size is not None else None
        )
        self.lstm = nn.LSTM(
            config.decoder_embedding_dim + 2 * config.hidden_size,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.position_embedding = (
            PositionEmbedding(config.max_decode_length, config.decoder_embedding_dim) if config.decoder_positions else None
        )
        self.dropout = FastDropout(config.dropout)
        self.output_projection = nn.Linear(config.hidden_size, config.vocab_size)

    def initial_state(self, latent: torch.Tensor):
        """`latent (B, D)` -> `((h_0, c_0), condition)`: `h_0, c_0 (L, B, H)` and `condition (B, 2H)`."""
        state = latent if self.latent_to_state is None else self.latent_to_state(latent)
        per_layer = state.reshape(state.shape[0], self.num_layers, 2 * self.hidden_size).transpose(0, 1)
        hidden = per_layer[..., : self.hidden_size].contiguous()
        cell = per_layer[..., self.hidden_size :].contiguous()
        return (hidden, cell), per_layer[-1]

    @staticmethod
    def reorder_state(state, rows: torch.Tensor):
        """The state of the rows `rows (N',)` (beam search): `h, c` carry the batch on dim 1, the condition on 0."""
        (hidden, cell), condition = state
        return (hidden.index_select(1, rows), cell.index_select(1, rows)), condition.index_select(0, rows)

    def forward(self, input_ids: torch.Tensor, state, repeats: int = 1, position: int = 0):
        """`input_ids (B, T')`, a state of `B * repeats` rows -> `logits (B * repeats, T', V)`, the state after the
        last step. `position`: the sentence position of `input_ids[:, 0]` (0 for `<s>`; generation feeds one
        position at a time), read with `config.decoder_positions` only. With `repeats` K > 1 every sentence is
        decoded by K consecutive rows of the state (K latents: importance sampling); its embeddings and, on the CPU,
        its share of the first layer's gates are computed once instead of K times. Only in eval mode (the K rows
        would share the sentence's dropout masks)."""
        check_repeats(self, repeats)
        (lstm_state, condition) = state
        inputs = self.dec_embedding(input_ids)
        if self.position_embedding is not None:
            inputs = inputs + self.position_embedding(position, input_ids.shape[1]).to(inputs.dtype)
        inputs = self.dropout(inputs)
        shared = repeats > 1 and use_stepwise_lstm(inputs)  # on the CPU without autocast
        if shared or use_stepwise_lstm(inputs, training_only=True):  # or sequences with gradients, on the CPU
            outputs, lstm_state = self._stepwise_lstm(inputs, lstm_state, condition, repeats)
        else:
            inputs = inputs.repeat_interleave(repeats, dim=0) if repeats > 1 else inputs
            inputs = torch.cat([inputs, condition.unsqueeze(1).expand(-1, inputs.shape[1], -1)], dim=-1)
            outputs, lstm_state = self.lstm(inputs, lstm_state)
        return self.output_projection(outputs), (lstm_state, condition)

    def _stepwise_lstm(self, inputs, lstm_state, condition, repeats: int = 1):
        """`self.lstm` on `[inputs; condition]`, its first layer by [`lstm_layer`]: the condition's share of the
        first layer's gates is computed once per sentence, not once per step, and the inputs' share once for the
        `repeats` rows of a sentence. The later layers run stepwise too where [`use_stepwise_lstm`] says so for
        the decoder (with gradients), else by the library kernel. Same values as `self.lstm` (its dropout between
        layers included, drawn by `self.dropout` with the same rate)."""
        size = inputs.shape[-1]
        weight_ih = self.lstm.weight_ih_l0
        extra_gates = F.linear(condition, weight_ih[:, size:])
        finals_h, finals_c = [], []
        for layer in range(self.num_layers):
            state = (lstm_state[0][layer], lstm_state[1][layer])
            if layer == 0:
                hidden, cell = lstm_layer(self.lstm, inputs, 0, state, extra_gates=extra_gates,
                                          input_columns=slice(0, size), repeats=repeats)
                final = (hidden[:, -1], cell[:, -1])
            elif use_stepwise_lstm(inputs, training_only=True):
                hidden, cell = lstm_layer(self.lstm, inputs, layer, state)
                final = (hidden[:, -1], cell[:, -1])
            else:  # no gradients: nn.LSTM's fused kernel, measured as fast or faster (docs/performance.md)
                hidden, final = library_lstm_layer(self.lstm, inputs, layer, state)
            finals_h.append(final[0])
            finals_c.append(final[1])
            inputs = self.dropout(hidden) if layer + 1 < self.num_layers else hidden
        return hidden, (torch.stack(finals_h), torch.stack(finals_c))


def check_repeats(decoder: nn.Module, repeats: int):
    """The decoders' `repeats`: a positive integer, above 1 only in eval mode."""
    if repeats < 1 or int(repeats) != repeats:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}.")
    if repeats > 1 and decoder.training:
        raise ValueError(
            "Decoding with repeats > 1 (one sentence for several latents) is for evaluation: in training mode the "
            "rows of a sentence would share its dropout masks. Call model.eval() first, or repeat the input_ids."
        )


class CausalConv1d(nn.Conv1d):
    """A dilated 1-D convolution that sees only the present and the past: `(B, C, T) -> (B, C, T)`.

    `forward(x, past)` takes the last `(kernel_size - 1) * dilation` inputs before x (`past (B, C, R)`, zeros at
    the start) and returns the output and the new past, so that generation can go one step at a time.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__(channels, channels, kernel_size, dilation=dilation)
        self.receptive = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor, past: torch.Tensor):
        full = torch.cat([past, x], dim=2)
        return super().forward(full), full[:, :, full.shape[2] - self.receptive :]


class HRVAECNNDecoder(nn.Module):
    """Dilated CNN decoder (Yang et al., 2017): causal convolutions with residual connections, z concatenated to
    every input. State: `(latent (B, D), pasts: one (B, C, R_l) per layer)`."""

    def __init__(self, config):
        super().__init__()
        channels = config.hidden_size
        self.dec_embedding = nn.Embedding(config.vocab_size, config.decoder_embedding_dim,
                                          padding_idx=config.pad_token_id)
        self.input_projection = nn.Linear(config.decoder_embedding_dim + config.latent_dim, channels)
        self.convolutions = nn.ModuleList(
            CausalConv1d(channels, config.cnn_kernel_size, dilation) for dilation in config.cnn_dilations
        )
        self.dropout = FastDropout(config.dropout)
        self.output_projection = nn.Linear(channels, config.vocab_size)

    def initial_state(self, latent: torch.Tensor):
        pasts = [latent.new_zeros(latent.shape[0], conv.in_channels, conv.receptive) for conv in self.convolutions]
        return latent, pasts

    @staticmethod
    def reorder_state(state, rows: torch.Tensor):
        """The state of the rows `rows (N',)` (beam search)."""
        latent, pasts = state
        return latent.index_select(0, rows), [past.index_select(0, rows) for past in pasts]

    def forward(self, input_ids: torch.Tensor, state, repeats: int = 1, position: int = 0):
        """`input_ids (B, T')`, a state of `B * repeats` rows -> `logits (B * repeats, T', V)`, the new state
        (`repeats`: as for [`HRVAEDecoder.forward`]; `position` is not used)."""
        check_repeats(self, repeats)
        latent, pasts = state
        inputs = self.dropout(self.dec_embedding(input_ids))
        inputs = inputs.repeat_interleave(repeats, dim=0) if repeats > 1 else inputs
        inputs = torch.cat([inputs, latent.unsqueeze(1).expand(-1, inputs.shape[1], -1)], dim=-1)
        hidden = self.input_projection(inputs).transpose(1, 2)  # (B, C, T')
        new_pasts = []
        for conv, past in zip(self.convolutions, pasts):
            output, past = conv(hidden, past)
            hidden = hidden + F.relu(output)  # residual block
            new_pasts.append(past)
        return self.output_projection(self.dropout(hidden.transpose(1, 2))), (latent, new_pasts)


__all__ = ["HRVAEDecoder", "HRVAECNNDecoder", "CausalConv1d", "FastDropout", "PositionEmbedding"]
