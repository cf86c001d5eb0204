"""Widening a saved model: more hidden units in every LSTM layer, the function unchanged until training moves it."""

import logging

import torch

logger = logging.getLogger(__name__)


def _old_positions(blocks: int, old: int, new: int) -> torch.Tensor:
    """Where the `blocks * old` entries of a layout of `blocks` consecutive blocks of size `old` sit once each block
    has size `new` (the old units first in each block)."""
    return torch.cat([torch.arange(old) + block * new for block in range(blocks)])


@torch.no_grad()
def _copy_rows_and_columns(new: torch.Tensor, old: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor | None):
    """`new[rows][:, columns] = old`, and zero on the other columns of those rows. The other rows (the new units'
    incoming weights) keep their fresh initialisation."""
    if columns is None:  # a bias
        new[rows] = old
        return
    new[rows] = 0.0
    new[rows[:, None], columns[None, :]] = old


def with_hidden_size(model, hidden_size: int | None):
    """`model` (a saved model) with `hidden_size` units in every LSTM layer of its encoder and decoder instead of its
    own (`None` or its own: unchanged), computing exactly what it did.

    The authors' wiring ties the latent to the decoder's state (z = `[h_1; c_1; ...; h_L; c_L]`), so z grows too.
    Each old unit keeps its weights and reads nothing new; each new unit gets fresh random incoming weights and
    zero outgoing weights (nothing reads it yet, but its activations give those weights a gradient). Each new
    dimension of z gets a posterior equal to the prior, N(0, 1) (zero mean and log-variance heads): its KL is 0 and
    nothing reads it. Training then decides what the new units do. Not in the paper (its hidden size is 256).

    Refused (`ValueError`): fewer units, a CNN decoder, a `latent_size` of its own (z not tied to the state), BN-VAE.
    """
    config = model.config
    if hidden_size is None or hidden_size == config.hidden_size:
        return model
    old_size = config.hidden_size
    if hidden_size < old_size:
        raise ValueError(f"--hidden_size {hidden_size}: this model has {old_size} units per layer; a model can be "
                         "widened, not narrowed, without changing what it computes.")
    if config.decoder_type != "lstm" or config.latent_size is not None or config.bn_vae:
        raise ValueError("--hidden_size with --model_name_or_path widens a model with an LSTM decoder whose z is its "
                         "initial state (latent_size unset, no BN-VAE); this one has decoder_type="
                         f"{config.decoder_type!r}, latent_size={config.latent_size}, bn_vae={config.bn_vae}.")
    wider = model.__class__(config.__class__.from_dict({**config.to_dict(), "hidden_size": hidden_size}))
    wider.to(next(model.parameters()).device)
    if set(wider.state_dict()) != set(model.state_dict()):  # a module this function does not know would stay random
        raise RuntimeError(f"Widening: the wider model's weights {sorted(wider.state_dict())} are not the model's "
                           f"{sorted(model.state_dict())}.")
    num_layers, embedding_size = config.num_layers, config.embedding_size
    gates = _old_positions(4, old_size, hidden_size)  # rows of an LSTM weight: the gates i, f, g, o of each unit
    units = torch.arange(old_size)  # columns read from the layer below, or from the layer's own state
    state = _old_positions(2 * num_layers, old_size, hidden_size)  # [h_1; c_1; ...]: z, and the encoder's heads

    def copy_lstm(new_lstm, old_lstm, suffix: str, input_columns: torch.Tensor):
        _copy_rows_and_columns(getattr(new_lstm, f"weight_ih{suffix}"), getattr(old_lstm, f"weight_ih{suffix}"),
                               gates, input_columns)
        _copy_rows_and_columns(getattr(new_lstm, f"weight_hh{suffix}"), getattr(old_lstm, f"weight_hh{suffix}"),
                               gates, units)
        for bias in ("bias_ih", "bias_hh"):
            _copy_rows_and_columns(getattr(new_lstm, f"{bias}{suffix}"), getattr(old_lstm, f"{bias}{suffix}"),
                                   gates, None)

    with torch.no_grad():
        old_encoder, new_encoder = model.encoder, wider.encoder
        new_encoder.enc_embedding.weight.copy_(old_encoder.enc_embedding.weight)
        for layer, (new_lstm, old_lstm) in enumerate(zip(new_encoder.layers, old_encoder.layers)):
            copy_lstm(new_lstm, old_lstm, "_l0", torch.arange(embedding_size) if layer == 0 else units)
        for head in ("to_mu", "to_logvar"):
            new_head, old_head = getattr(new_encoder, head), getattr(old_encoder, head)
            new_head.weight.zero_()
            new_head.bias.zero_()
            _copy_rows_and_columns(new_head.weight, old_head.weight, state, state)
            _copy_rows_and_columns(new_head.bias, old_head.bias, state, None)

        old_decoder, new_decoder = model.decoder, wider.decoder
        new_decoder.dec_embedding.weight.copy_(old_decoder.dec_embedding.weight)
        if old_decoder.position_embedding is not None:
            new_decoder.position_embedding.load_state_dict(old_decoder.position_embedding.state_dict())
        inputs = config.decoder_embedding_dim
        condition = inputs + _old_positions(2, old_size, hidden_size)  # the top layer's [h; c] of z
        for layer in range(num_layers):
            columns = torch.cat([torch.arange(inputs), condition]) if layer == 0 else units
            copy_lstm(new_decoder.lstm, old_decoder.lstm, f"_l{layer}", columns)
        projection = new_decoder.output_projection
        _copy_rows_and_columns(projection.weight, old_decoder.output_projection.weight,
                               torch.arange(config.vocab_size), units)
        projection.bias.copy_(old_decoder.output_projection.bias)
    logger.info(f"Widened from {old_size} to {hidden_size} hidden units per layer (z: {config.latent_dim} -> "
                f"{wider.config.latent_dim} dims); the model computes what it did.")
    return wider


__all__ = ["with_hidden_size"]
