"""`HRVAEConfig.neighbour_unlikelihood`, `repeat_unlikelihood` and `prior_repeat_unlikelihood`: training terms
(labelled variants, not in the paper) that lower each position's probability of its gold neighbours, and of the words
the decoder's own top tokens repeat back-to-back, for a sentence's z or one drawn from the prior: the stutter of an
inputless decoder ("a a pub")."""

import json
import math

import pytest
import torch
from transformers import AutoModel

from conftest import tiny_config
from hf_hrvae import HRVAEModel
from hf_hrvae.models.hrvae.losses_hrvae import neighbour_unlikelihood, prior_repeat_unlikelihood, repeat_unlikelihood
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


def test_the_repeat_term_is_the_unlikelihood_of_each_wrong_copy_of_a_repeated_top_token():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 7, dtype=torch.float64)
    top = [[3, 3, 3, 5, 1, 1],  # 3 3 3: a run; 1 1 at positions 4-5, but position 5 is padding
           [2, 4, 2, 4, 6, 6]]  # no neighbours equal until 6 6
    for row, tokens in enumerate(top):
        for position, token in enumerate(tokens):
            logits[row, position, token] = 5.0
    targets = torch.tensor([[3, 4, 0, 5, 1, -100],  # position 0's 3 is gold: no term; positions 1, 2 are wrong
                            [2, 4, 2, 4, 0, 6]])  # position 4's 6 is wrong, position 5's is gold
    probs = logits.softmax(-1)

    def term(row, position):
        return -math.log(1 - probs[row, position, top[row][position]].item())

    expected = [term(0, 1) + term(0, 2), term(1, 4)]
    torch.testing.assert_close(repeat_unlikelihood(logits, targets), torch.tensor(expected, dtype=torch.float64))
    (grad,) = torch.autograd.grad(repeat_unlikelihood(logits.requires_grad_(), targets).sum(), logits)
    assert grad[0, 1, 3] > 0 and grad[1, 4, 6] > 0  # descent lowers the wrong copies
    assert grad[0, 0].abs().sum() == 0 and grad[1, :4].abs().sum() == 0  # and leaves the rest alone


def test_the_prior_term_lowers_every_later_copy_up_to_the_first_end_of_sentence():
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 6, dtype=torch.float64)
    eos = 3
    top = [[4, 4, 4, 5, 3, 3, 1],  # copies at 1, 2; </s> at 4, so its copy at 5 does not count
           [5, 2, 2, 1, 1, 0, 0]]  # copies at 2, 4, 6 (no </s>: to the end)
    for row, tokens in enumerate(top):
        for position, token in enumerate(tokens):
            logits[row, position, token] = 6.0
    probs = logits.softmax(-1)

    def term(row, position):
        return -math.log(1 - probs[row, position, top[row][position]].item())

    expected = [term(0, 1) + term(0, 2), term(1, 2) + term(1, 4) + term(1, 6)]
    torch.testing.assert_close(prior_repeat_unlikelihood(logits, eos), torch.tensor(expected, dtype=torch.float64))


def test_the_prior_term_decodes_prior_draws_and_adds_to_the_loss_only(tokenizer, batch):
    outputs = {}
    for weight in (0.0, 0.7):
        torch.manual_seed(0)
        model = HRVAEModel(tiny_config(len(tokenizer), setting="inputless", prior_repeat_unlikelihood=weight)).eval()
        outputs[weight] = model(batch["input_ids"], batch["attention_mask"], labels=batch["input_ids"])
    plain, weighted = outputs[0.0], outputs[0.7]
    assert plain.prior_repeat_unlikelihood_loss is None and weighted.prior_repeat_unlikelihood_loss >= 0
    torch.testing.assert_close(weighted.reconstruction_loss, plain.reconstruction_loss)
    torch.testing.assert_close(weighted.loss, plain.loss + 0.7 * weighted.prior_repeat_unlikelihood_loss)
    # the value is the term of max(1, B // 4) prior draws' logits: fix the draws to see them
    model.sample_prior = lambda count: torch.zeros(count, model.config.latent_dim)  # a z whose output repeats
    model.decoder.output_projection.bias.data[5] = 50.0  # every position's top token: 5
    again = model(batch["input_ids"], batch["attention_mask"], labels=batch["input_ids"])
    draws = max(1, batch["input_ids"].shape[0] // 4)
    logits = model.decode(torch.zeros(draws, model.config.latent_dim), batch["input_ids"][:draws])
    expected = prior_repeat_unlikelihood(logits, model.config.eos_token_id).mean()
    assert expected > 1 and torch.allclose(again.prior_repeat_unlikelihood_loss, expected)
    with pytest.raises(ValueError, match="prior_repeat_unlikelihood is for the inputless setting"):
        tiny_config(50, setting="standard", prior_repeat_unlikelihood=1.0)


@pytest.mark.parametrize("setting", ["standard", "inputless"])
@pytest.mark.parametrize("name, term", [("neighbour", neighbour_unlikelihood), ("repeat", repeat_unlikelihood)])
def test_the_weight_adds_the_term_to_the_loss_and_changes_nothing_reported(tokenizer, batch, setting, name, term):
    outputs = {}
    for weight in (0.0, 0.7):
        torch.manual_seed(0)
        config = tiny_config(len(tokenizer), setting=setting, **{f"{name}_unlikelihood": weight})
        model = HRVAEModel(config).eval()
        outputs[weight] = model(batch["input_ids"], batch["attention_mask"], labels=batch["input_ids"])
    field = "unlikelihood_loss" if name == "neighbour" else "repeat_unlikelihood_loss"
    plain, weighted = getattr(outputs[0.0], field), outputs[0.7]
    assert plain is None and getattr(weighted, field) > 0
    assert weighted.unlikelihood_loss is None or weighted.repeat_unlikelihood_loss is None  # only the one asked for
    torch.testing.assert_close(weighted.reconstruction_loss, outputs[0.0].reconstruction_loss)
    torch.testing.assert_close(weighted.kl_last, outputs[0.0].kl_last)
    torch.testing.assert_close(weighted.loss, outputs[0.0].loss + 0.7 * getattr(weighted, field))
    targets = batch["input_ids"][:, 1:].masked_fill(batch["attention_mask"][:, 1:] == 0, -100)
    torch.testing.assert_close(getattr(weighted, field), term(weighted.logits, targets).mean())


def test_an_inputless_models_top_tokens_are_its_greedy_output(tokenizer, batch):
    """What makes the repeat term aim at the printed repeats: the teacher-forced top tokens of an inputless decoder
    are what `generate` prints for the same z, as far as the gold sentence goes."""
    torch.manual_seed(0)
    model = HRVAEModel(tiny_config(len(tokenizer), setting="inputless")).eval()
    output = model(batch["input_ids"], batch["attention_mask"])
    top = output.logits.argmax(-1)
    printed = model.generate(latent=output.latent, max_new_tokens=top.shape[1], do_sample=False)
    printed = printed[:, 1:] if bool((printed[:, 0] == tokenizer.bos_token_id).all()) else printed
    for row, tokens in zip(top.tolist(), printed.tolist()):
        shown = [token for token in tokens if token != tokenizer.pad_token_id]  # up to its </s>
        assert len(shown) >= 3 and shown == row[: len(shown)]


@pytest.mark.parametrize("name", ["neighbour_unlikelihood", "repeat_unlikelihood", "prior_repeat_unlikelihood"])
def test_the_weight_is_validated(name):
    with pytest.raises(ValueError, match=f"{name} must be a number >= 0"):
        tiny_config(50, setting="inputless", **{name: -1.0})
    with pytest.raises(ValueError, match=f"{name} must be a number >= 0"):
        tiny_config(50, setting="inputless", **{name: float("nan")})


def test_a_saved_model_continues_with_the_term_logged_and_saved(e2e_folder, tmp_path):
    Trainer(tiny_args(e2e_folder, tmp_path / "first", setting="inputless", max_train_steps=1)).run()
    warm = Trainer(tiny_args(e2e_folder, tmp_path / "warm", model_name_or_path=str(tmp_path / "first"),
                             embedding_size=None, hidden_size=None, neighbour_unlikelihood=0.5,
                             repeat_unlikelihood=0.25, prior_repeat_unlikelihood=0.125, max_train_steps=2))
    warm.run()
    config = AutoModel.from_pretrained(tmp_path / "warm").config
    assert config.neighbour_unlikelihood == 0.5 and config.repeat_unlikelihood == 0.25
    assert config.prior_repeat_unlikelihood == 0.125
    steps = [json.loads(line) for line in (tmp_path / "warm" / "train_log.jsonl").read_text().splitlines()]
    steps = [entry for entry in steps if entry["kind"] == "train_step"]
    assert len(steps) == 2 and all(entry["unlikelihood"] > 0 and entry["repeat_unlikelihood"] >= 0
                               and entry["prior_repeat_unlikelihood"] >= 0 for entry in steps)
    for entry in steps:  # the loss is the objective plus the weighted terms; the ELBO stays the model's
        terms = (0.5 * entry["unlikelihood"] + 0.25 * entry["repeat_unlikelihood"]
                 + 0.125 * entry["prior_repeat_unlikelihood"])
        assert entry["loss"] == pytest.approx(entry["reconstruction"] + entry["kl_holistic"] + terms, rel=1e-4)
        assert entry["elbo"] == entry["reconstruction"] + entry["kl_last"]
