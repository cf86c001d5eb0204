"""The token NLL of the reconstruction term (losses_hrvae.py): the CPU's hand-written backward against
F.cross_entropy, and which one runs."""

import pytest
import torch
import torch.nn.functional as F

from hf_hrvae.models.hrvae import losses_hrvae
from hf_hrvae.models.hrvae.losses_hrvae import TokenNLL, token_nll, use_token_nll


def reference(logits, targets):
    return F.cross_entropy(logits, targets, ignore_index=-100, reduction="none")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_token_nll_equals_cross_entropy_in_value_and_gradient(dtype):
    torch.manual_seed(0)
    logits = (3 * torch.randn(40, 57, dtype=dtype)).requires_grad_()
    targets = torch.randint(0, 57, (40,))
    targets[::7] = -100  # ignored positions: NLL 0, no gradient
    weights = torch.rand(40, dtype=dtype)  # a non-uniform incoming gradient
    nll = TokenNLL.apply(logits, targets)
    (grad,) = torch.autograd.grad((nll * weights).sum(), logits)
    expected = reference(logits, targets)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), logits)
    tolerance = {"atol": 1e-6, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-12, "rtol": 1e-12}
    torch.testing.assert_close(nll, expected, **tolerance)
    torch.testing.assert_close(grad, expected_grad, **tolerance)
    assert torch.all(nll[::7] == 0) and torch.all(grad[::7] == 0)


def test_token_nll_refuses_targets_outside_the_vocabulary():
    logits = torch.randn(3, 5, requires_grad=True)
    for bad in (5, -1):
        with pytest.raises((IndexError, RuntimeError), match="out of bounds"):
            TokenNLL.apply(logits, torch.tensor([0, bad, 2]))


def test_a_second_backward_pass_raises_instead_of_using_the_consumed_buffer():
    logits = torch.randn(4, 6, requires_grad=True)
    loss = TokenNLL.apply(logits, torch.tensor([1, 2, 3, -100])).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="cannot run twice"):
        loss.backward()


def test_which_nll_runs(monkeypatch):
    weights = torch.randn(6, requires_grad=True)
    logits = torch.randn(4, 6) * weights  # depends on a parameter
    assert use_token_nll(logits)
    assert not use_token_nll(logits.detach())  # nothing to differentiate
    with torch.no_grad():
        assert not use_token_nll(torch.randn(4, 6) * weights)  # evaluation
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not use_token_nll(logits)  # F.cross_entropy under autocast (computed in fp32 there)
    monkeypatch.setattr(losses_hrvae, "FORCE_TOKEN_NLL", False)
    assert not use_token_nll(logits)
    monkeypatch.setattr(losses_hrvae, "FORCE_TOKEN_NLL", True)
    with torch.no_grad():
        assert use_token_nll(logits)
    torch.testing.assert_close(token_nll(logits, torch.tensor([0, 1, -100, 5])),
                               reference(logits, torch.tensor([0, 1, -100, 5])))


@pytest.mark.parametrize("setting", ["standard", "inputless"])
def test_training_loss_and_gradients_are_those_of_cross_entropy(make_model, batch, setting, monkeypatch):
    results = []
    for force in (True, False):
        model = make_model(setting=setting, dropout=0.0).train()  # same seed: same weights
        monkeypatch.setattr(losses_hrvae, "FORCE_TOKEN_NLL", force)
        torch.manual_seed(1)  # same z noise
        output = model(**batch, labels=batch["input_ids"])
        output.loss.backward()
        results.append((output.loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (loss, grads), (expected_loss, expected_grads) = results
    torch.testing.assert_close(loss, expected_loss, atol=1e-6, rtol=1e-6)
    assert grads.keys() == expected_grads.keys() and len(grads) > 10
    for name in grads:
        torch.testing.assert_close(grads[name], expected_grads[name], atol=1e-6, rtol=1e-5, msg=name)
