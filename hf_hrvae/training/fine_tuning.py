"""Fine-tuning a saved model on new text: its vocabulary extended with the new text's words, or kept; position
embeddings added to its decoder; another dropout rate; unlikelihood terms against repeats."""

import logging

from torch import nn

from ..tokenization_hrvae import extend_tokenizer, unk_share

logger = logging.getLogger(__name__)


def adapt_vocabulary(model, tokenizer, texts, min_frequency: int = 1, keep_vocabulary: bool = False):
    """Prepare `model` and `tokenizer` (a saved model's) for training on `texts`, the new training sentences.

    Unless `keep_vocabulary`, the words of `texts` the tokenizer lacks, seen at least `min_frequency` times, are
    appended to its vocabulary and the model grows with them (`model.resize_token_embeddings`: each new word starts
    as `<unk>` was). Returns the tokenizer to train with and a record for the run: the share of `<unk>` among the
    words of `texts` before and after, and the words added."""
    texts = list(texts)
    before = unk_share(tokenizer, texts)
    added = []
    if not keep_vocabulary:
        tokenizer, added = extend_tokenizer(tokenizer, texts, min_frequency)
        if added:
            model.resize_token_embeddings(len(tokenizer))
    after = unk_share(tokenizer, texts) if added else before
    record = {"vocabulary": "kept" if keep_vocabulary else "extended", "min_frequency": min_frequency,
              "vocab_size": len(tokenizer), "added_words": len(added), "first_added": added[:20],
              "unk_share_before": round(before, 4), "unk_share_after": round(after, 4)}
    if keep_vocabulary:
        logger.info(f"Vocabulary kept ({len(tokenizer)} entries): {before:.1%} of the training words are <unk>.")
    else:
        logger.info(f"Vocabulary extended by {len(added)} words seen >= {min_frequency} times (now {len(tokenizer)} "
                    f"entries): <unk> {before:.1%} -> {after:.1%} of the training words.")
    if after > 0.05:
        logger.warning(f"{after:.1%} of the training words are <unk> to the model"
                       + (" (--keep_vocabulary)." if keep_vocabulary else f" (words seen < {min_frequency} times)."))
    return tokenizer, record


def with_decoder_positions(model, decoder_positions: bool | None):
    """`model` (a saved model) with `HRVAEConfig.decoder_positions` as asked: `None` or its own value leaves it as it
    is; `True` on a model without positions returns a copy with zero-initialised position embeddings, the same
    function until training moves them. Removing a model's positions (`False`) would change what it computes: a
    `ValueError`."""
    if decoder_positions is None or decoder_positions == model.config.decoder_positions:
        return model
    if not decoder_positions:
        raise ValueError("--decoder_positions false: this model was trained with position embeddings in its decoder; "
                         "they cannot be removed without changing it. Leave the flag out.")
    config = model.config.__class__.from_dict({**model.config.to_dict(), "decoder_positions": True})
    extended = model.__class__(config)
    missing, unexpected = extended.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not key.startswith("decoder.position_embedding.") for key in missing):
        raise RuntimeError(f"Adding decoder positions changed more than the position embeddings: missing {missing}, "
                           f"unexpected {unexpected}.")
    logger.info("Decoder position embeddings added (zero-initialised: the model computes what it did).")
    return extended.to(next(model.parameters()).device)


def _set_checked(config, name: str, value):
    """Set `config.<name>` to `value` and return the old value; a value the config refuses raises its `ValueError`
    (naming the field) and leaves the config as it was."""
    before = getattr(config, name)
    setattr(config, name, value)
    try:
        config.validate_hrvae()
    except ValueError:
        setattr(config, name, before)
        raise
    return before


def with_dropout(model, dropout: float | None):
    """`model` (a saved model) training with the dropout rate `dropout` instead of its own (`None`: its own): every
    dropout of the model, embeddings and between LSTM layers, and `config.dropout`, saved with it. Evaluation and
    generation do not change (they run without dropout)."""
    if dropout is None or dropout == model.config.dropout:
        return model
    before = _set_checked(model.config, "dropout", dropout)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = dropout
        elif isinstance(module, nn.LSTM) and module.num_layers > 1:
            module.dropout = dropout
    logger.info(f"Dropout {before} -> {dropout} (training only).")
    return model


def with_unlikelihoods(model, neighbour: float | None = None, repeat: float | None = None,
                       prior_repeat: float | None = None):
    """`model` (a saved model) training with `HRVAEConfig.neighbour_unlikelihood = neighbour`, `repeat_unlikelihood
    = repeat` and `prior_repeat_unlikelihood = prior_repeat` (`None`: its own), saved with it. The model computes
    what it did: the weights only add terms to the training loss."""
    for kind, weight in (("neighbour", neighbour), ("repeat", repeat), ("prior_repeat", prior_repeat)):
        name = f"{kind}_unlikelihood"
        if weight is not None and weight != getattr(model.config, name):
            before = _set_checked(model.config, name, weight)
            logger.info(f"{name} {before} -> {weight} (a training term).")
    return model


__all__ = ["adapt_vocabulary", "with_decoder_positions", "with_dropout", "with_unlikelihoods"]
