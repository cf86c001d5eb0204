"""Bad input gives a correct result or a clear error, never a crash deep in torch."""

import pytest
import torch
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging

from hf_hrvae.models.hrvae.modeling_hrvae import logger as modeling_logger


def test_empty_string_and_only_unknown_words(make_model, tokenizer):
    model = make_model().eval()
    batch = tokenizer(["", "zzqx qqzx", "blue spice ."], return_tensors="pt", padding=True)
    out = model(**batch, labels=batch["input_ids"])
    assert torch.isfinite(out.loss)
    assert model.generate(**batch, max_new_tokens=4).shape[0] == 3


def test_over_long_input_is_truncated_with_a_warning(make_model, tokenizer):
    model = make_model(max_decode_length=8).eval()
    batch = tokenizer(["a b c d e f g h i j k l m"], return_tensors="pt")
    assert batch["input_ids"].shape[1] > 8
    logging.set_verbosity_warning()
    with CaptureLogger(modeling_logger) as captured:
        out = model(**batch, labels=batch["input_ids"])
    assert "longer than config.max_decode_length=8: truncated" in captured.out
    assert out.logits.shape[1] == 7
    truncated = {key: value[:, :8] for key, value in batch.items()}
    expected = model(**truncated, labels=truncated["input_ids"])
    for name in ("logits", "mu", "kl_loss", "loss"):  # the KL over the kept steps only
        assert torch.equal(getattr(out, name), getattr(expected, name)), name


def test_rows_of_padding_only_take_no_part(make_model, tokenizer):
    model = make_model().eval()
    batch = tokenizer(["blue spice .", "a coffee shop in the city centre ."], return_tensors="pt", padding=True)
    ids = torch.cat([batch["input_ids"], torch.zeros_like(batch["input_ids"][:1])])
    mask = torch.cat([batch["attention_mask"], torch.zeros_like(batch["attention_mask"][:1])])
    with_empty = model(input_ids=ids, attention_mask=mask, labels=ids)
    without = model(**batch, labels=batch["input_ids"])
    for name in ("loss", "reconstruction_loss", "kl_loss", "kl_last"):
        torch.testing.assert_close(getattr(with_empty, name), getattr(without, name))
    assert torch.equal(with_empty.mu[2], torch.zeros_like(with_empty.mu[2]))  # the prior
    with pytest.raises(ValueError, match="Every row of attention_mask is 0"):
        model(input_ids=torch.zeros(2, 4, dtype=torch.long), attention_mask=torch.zeros(2, 4, dtype=torch.long))


def test_attention_mask_is_inferred_from_padding(make_model, batch):
    model = make_model().eval()
    assert torch.equal(model(input_ids=batch["input_ids"]).logits, model(**batch).logits)


@pytest.mark.parametrize(
    "make_inputs, message",
    [
        (lambda ids, mask: dict(input_ids=ids[0]), "input_ids must be a LongTensor of shape \\(batch, length\\)"),
        (lambda ids, mask: dict(input_ids=ids.tolist()), "input_ids must be a LongTensor"),
        (lambda ids, mask: dict(input_ids=ids.float()), "must hold integer token ids"),
        (lambda ids, mask: dict(input_ids=ids[:, :0]), "input_ids is empty"),
        (lambda ids, mask: dict(input_ids=ids[:, :1]), "Decoding needs at least 2 positions"),
        (lambda ids, mask: dict(input_ids=ids, attention_mask=mask[:, :-1]), "attention_mask has shape"),
        (lambda ids, mask: dict(input_ids=ids, attention_mask=mask, labels=ids[:, :-1]), "labels has shape"),
        (lambda ids, mask: dict(input_ids=ids + 10_000, attention_mask=mask), "the vocabulary has"),
        (lambda ids, mask: dict(input_ids=ids - 5, attention_mask=mask), "the vocabulary has"),
        (lambda ids, mask: dict(input_ids=ids, attention_mask=mask.flip(1)), "must be right-padded"),
    ],
)
def test_malformed_batches_raise_clear_errors(make_model, batch, make_inputs, message):
    model = make_model()
    with pytest.raises(ValueError, match=message):
        model(**make_inputs(batch["input_ids"], batch["attention_mask"]))


def test_encode_and_generate_check_their_inputs_too(make_model):
    model = make_model()
    with pytest.raises(ValueError, match="the vocabulary has"):
        model.encode(torch.tensor([[2, 99999, 3]]))
    with pytest.raises(ValueError, match="the vocabulary has"):
        model.generate(input_ids=torch.tensor([[2, 99999, 3]]))


def test_more_empty_rows_than_tokens(make_model):
    model = make_model().eval()
    ids = torch.tensor([[0, 0, 0], [2, 5, 3], [0, 0, 0], [0, 0, 0]])
    mask = (ids != 0).long()
    out = model(input_ids=ids, attention_mask=mask, labels=ids)
    alone = model(input_ids=ids[1:2], attention_mask=mask[1:2], labels=ids[1:2])
    torch.testing.assert_close(out.kl_loss, alone.kl_loss)
    torch.testing.assert_close(out.loss, alone.loss)
