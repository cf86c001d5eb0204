"""Folding the inputless decoder's word embedding into its first layer: the same function, fewer weights."""

import logging

import torch

logger = logging.getLogger(__name__)


@torch.no_grad()
def fold_inputless_embedding(model):
    """`model` (an inputless HR-VAE with an LSTM decoder) with a one-dimensional decoder embedding
    (`decoder_embedding_size=1`), computing what it did in eval mode; a model already folded is returned as is.

    The inputless decoder sees `<s>` at the first step and `<unk>` at every later one
    ([`HRVAEModel.inputless_inputs`]), so its embedding adds one of two vectors to the first layer's gates:
    `W e(<unk>)` or `W e(<s>)`, with `W` the layer's embedding columns. The fold adds `W e(<unk>)` to `bias_ih_l0`
    and gives the layer one input column, `W (e(<s>) - e(<unk>))`, read from a one-dimensional embedding that is
    1 for `<s>` and 0 for every other word. The `V x E` table and `E - 1` columns go: 1.66 M weights at 512 units
    (25 % of the 256-unit model's 6.8 M). Training the folded model with `dropout > 0` is not training the original:
    dropout would act on that one input, not on E.

    Refused (`ValueError`): the standard setting (the decoder reads the words), a CNN decoder, `decoder_positions`
    (a learnt vector per position, not two).
    """
    config = model.config
    if config.setting != "inputless" or config.decoder_type != "lstm" or config.decoder_positions:
        raise ValueError("fold_inputless_embedding folds an inputless model's LSTM decoder without position "
                         f"embeddings; this one has setting={config.setting!r}, decoder_type={config.decoder_type!r}, "
                         f"decoder_positions={config.decoder_positions}.")
    if config.decoder_embedding_dim == 1:
        return model
    folded = model.__class__(config.__class__.from_dict({**config.to_dict(), "decoder_embedding_size": 1}))
    folded.to(next(model.parameters()))
    state = model.state_dict()
    size = config.decoder_embedding_dim
    embeddings = state["decoder.dec_embedding.weight"]
    weight = state["decoder.lstm.weight_ih_l0"]
    start, step = embeddings[config.bos_token_id], embeddings[config.unk_token_id]
    table = torch.zeros(config.vocab_size, 1, dtype=embeddings.dtype, device=embeddings.device)
    table[config.bos_token_id] = 1.0
    state.update({
        "decoder.dec_embedding.weight": table,
        "decoder.lstm.weight_ih_l0": torch.cat([(weight[:, :size] @ (start - step)).unsqueeze(1), weight[:, size:]], 1),
        "decoder.lstm.bias_ih_l0": state["decoder.lstm.bias_ih_l0"] + weight[:, :size] @ step,
    })
    folded.load_state_dict(state)
    folded.train(model.training)
    dropped = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in folded.parameters())
    logger.info(f"Folded the inputless decoder's {size}-d embedding into its first layer: {dropped:,} fewer weights.")
    return folded


__all__ = ["fold_inputless_embedding"]
