"""The naive HR-VAE: the model's maths written as the paper describes it and the authors' code runs it, one time
step at a time. The reference the tests hold the fused model to, and the baseline `benchmark.py` times it against.
"""

import torch
from torch import nn

from ..models.hrvae.modeling_hrvae import HRVAEModel
from ..models.hrvae.recurrence_hrvae import forced_lstm_path


class NaiveHRVAE(nn.Module):
    """The same maths as [`HRVAEModel`] with the same weights, as Python loops over time steps: in the encoder every
    layer's `[h_t; c_t]` from per-step `nn.LSTM` calls (torch's LSTM, none of the model's scan or stepwise code),
    in the decoder one `nn.LSTM` step at a time. Gaussian HR-VAE (`kl_regularisation="holistic"`, mean over steps)."""

    def __init__(self, model: HRVAEModel):
        super().__init__()
        self.model = model

    def encode(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(mu_steps, logvar_steps)`, each `(B, T, latent_size)`: the posterior at every encoder step."""
        encoder = self.model.encoder
        inputs = encoder.dropout(encoder.enc_embedding(input_ids))
        states = [None] * len(encoder.layers)
        mus, logvars = [], []
        for t in range(input_ids.shape[1]):
            layer_input, concatenated = inputs[:, t : t + 1], []
            for index, lstm in enumerate(encoder.layers):
                output, states[index] = lstm(layer_input, states[index])
                concatenated += [states[index][0][0], states[index][1][0]]
                layer_input = encoder.dropout(output) if index + 1 < len(encoder.layers) else output
            state = torch.cat(concatenated, dim=-1)
            mus.append(encoder.to_mu(state))
            logvars.append(encoder.to_logvar(state))
        return torch.stack(mus, 1), torch.stack(logvars, 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The training loss (Eq. 3): token NLL + the KL averaged over each sentence's steps, means over the batch;
        z is sampled from the last real step's posterior in training, its mean in eval mode."""
        with forced_lstm_path(False):  # nn.LSTM for every step, whatever path the fused model is forced onto
            model = self.model
            mu_steps, logvar_steps = self.encode(input_ids)
            mask = attention_mask.float()
            kl_steps = 0.5 * (mu_steps.pow(2) + logvar_steps.exp() - 1 - logvar_steps).sum(-1)
            kl = ((kl_steps * mask).sum(1) / mask.sum(1)).mean()
            last = (attention_mask.sum(1) - 1).view(-1, 1, 1).expand(-1, 1, mu_steps.shape[-1])
            mu, logvar = mu_steps.gather(1, last)[:, 0], logvar_steps.gather(1, last)[:, 0]
            latent = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
            decoder_inputs = model.decoder_inputs(input_ids[:, :-1])
            state, logits = model.decoder.initial_state(latent), []
            for t in range(input_ids.shape[1] - 1):
                step_logits, state = model.decoder(decoder_inputs[:, t : t + 1], state, position=t)
                logits.append(step_logits)
            return model.token_nll(torch.cat(logits, dim=1), input_ids, attention_mask).mean() + kl


__all__ = ["NaiveHRVAE"]
