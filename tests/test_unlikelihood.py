"""`HRVAEConfig.neighbour_unlikelihood`: a training term (a labelled variant, not in the paper) that lowers each
position's probability of its gold neighbours, the back-to-back repeats of an inputless decoder ("a a pub")."""

import json
import math

import pytest
import torch
from transformers import AutoModel

from conftest import tiny_config
from hf_hrvae import HRVAEModel
from hf_hrvae.models.hrvae.losses_hrvae import neighbour_unlikelihood
from hf_hrvae.training import Trainer
from test_training import tiny_args


def test_the_term_is_the_unlikelihood_of_each_different_real_neighbour():
    torch.manual_seed(0)
    logits = 2 * torch.randn(2, 5, 9, dtype=torch.float64)
    targets = torch.tensor([[4, 6, 6, 2, -100],  # 6 6: a neighbour equal to the token counts for neither
                            [1, 3, 5, 7, 8]])
    probs = logits.softmax(-1)

    def term(row, position, token):
        return -math.log(1 - probs[row, position, token].item())

    expected = [
        term(0, 0, 6)                      # position 0: only the next (6); no previous
        + term(0, 1, 4)                    # position 1 (6): previous 4; next 6 equals it
        + term(0, 2, 2)                    # position 2 (6): previous 6 equals it; next 2
        + term(0, 3, 6),                   # position 3 (2): previous 6; next is padding; padding itself: nothing
        sum(term(1, t, targets[1, t - 1]) for t in range(1, 5)) + sum(term(1, t, targets[1, t + 1]) for t in range(4)),
    ]
    torch.testing.assert_close(neighbour_unlikelihood(logits, targets), torch.tensor(expected, dtype=torch.float64))


def test_the_term_is_finite_when_the_model_is_sure_of_a_neighbour_and_its_gradient_lowers_it():
    logits = torch.zeros(1, 2, 4)
    logits[0, 1, 0] = 100.0  # position 1 puts all its mass on its previous gold token, 0
    logits.requires_grad_()
    value = neighbour_unlikelihood(logits, torch.tensor([[0, 1]]))
    assert math.isfinite(value.item()) and value.item() > 10
    softer = torch.zeros(1, 2, 4, requires_grad=True)
    (grad,) = torch.autograd.grad(neighbour_unlikelihood(softer, torch.tensor([[0, 1]])).sum(), softer)
    assert grad[0, 1, 0] > 0 and grad[0, 0, 1] > 0  # descent lowers each position's neighbour
    assert grad[0, 1, 1] < 0 and grad[0, 0, 0] < 0  # and so raises the rest, the gold token among it


@pytest.mark.parametrize("setting", ["standard", "inputless"])
def test_the_weight_adds_the_term_to_the_loss_and_changes_nothing_reported(tokenizer, batch, setting):
    outputs = {}
    for weight in (0.0, 0.7):
        torch.manual_seed(0)
        model = HRVAEModel(tiny_config(len(tokenizer), setting=setting, neighbour_unlikelihood=weight)).eval()
        outputs[weight] = model(batch["input_ids"], batch["attention_mask"], labels=batch["input_ids"])
    plain, weighted = outputs[0.0], outputs[0.7]
    assert plain.unlikelihood_loss is None and weighted.unlikelihood_loss > 0
    torch.testing.assert_close(weighted.reconstruction_loss, plain.reconstruction_loss)
    torch.testing.assert_close(weighted.kl_last, plain.kl_last)
    torch.testing.assert_close(weighted.loss, plain.loss + 0.7 * weighted.unlikelihood_loss)
    targets = batch["input_ids"][:, 1:].masked_fill(batch["attention_mask"][:, 1:] == 0, -100)
    torch.testing.assert_close(weighted.unlikelihood_loss, neighbour_unlikelihood(weighted.logits, targets).mean())


def test_the_weight_is_validated():
    with pytest.raises(ValueError, match="neighbour_unlikelihood must be a number >= 0"):
        tiny_config(50, neighbour_unlikelihood=-1.0)
    with pytest.raises(ValueError, match="neighbour_unlikelihood must be a number >= 0"):
        tiny_config(50, neighbour_unlikelihood=float("nan"))


def test_a_saved_model_continues_with_the_term_logged_and_saved(e2e_folder, tmp_path):
    Trainer(tiny_args(e2e_folder, tmp_path / "first", setting="inputless", max_train_steps=1)).run()
    warm = Trainer(tiny_args(e2e_folder, tmp_path / "warm", model_name_or_path=str(tmp_path / "first"),
                             embedding_size=None, hidden_size=None, neighbour_unlikelihood=0.5, max_train_steps=2))
    warm.run()
    assert AutoModel.from_pretrained(tmp_path / "warm").config.neighbour_unlikelihood == 0.5
    steps = [json.loads(line) for line in (tmp_path / "warm" / "train_log.jsonl").read_text().splitlines()]
    steps = [entry for entry in steps if entry["kind"] == "train_step"]
    assert len(steps) == 2 and all(entry["unlikelihood"] > 0 for entry in steps)
    for entry in steps:  # the loss is the objective plus the weighted term; the ELBO stays the model's
        assert entry["loss"] > entry["reconstruction"] + entry["kl_holistic"]
        assert entry["elbo"] == entry["reconstruction"] + entry["kl_last"]
