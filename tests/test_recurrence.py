"""The two exact ways of running the LSTMs (recurrence_hrvae.py): the stepwise recurrence that keeps every c_t, and
the library LSTM with the cell states recovered by a parallel scan. Same values, same gradients."""

import pytest
import torch
from torch import nn
from transformers import LogitsProcessorList, SuppressTokensLogitsProcessor

from hf_hrvae.models.hrvae import decoders_hrvae, recurrence_hrvae
from hf_hrvae.models.hrvae.configuration_hrvae import PRESETS
from hf_hrvae.models.hrvae.recurrence_hrvae import LSTMRecurrence, forced_lstm_path, lstm_layer, use_stepwise_lstm


def explicit_lstm(lstm, layer, inputs, h, c):
    """The LSTM equations one step at a time, independent of the code under test: every h_t and c_t."""
    w_ih, w_hh = getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"weight_hh_l{layer}")
    bias = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
    hs, cs = [], []
    for t in range(inputs.shape[1]):
        i, f, g, o = (inputs[:, t] @ w_ih.T + h @ w_hh.T + bias).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        hs.append(h)
        cs.append(c)
    return torch.stack(hs, 1), torch.stack(cs, 1)


def test_recurrence_gradients_pass_gradcheck():
    torch.manual_seed(0)
    batch, length, size = 2, 5, 3
    args = [torch.randn(batch, length, 4 * size, dtype=torch.float64, requires_grad=True),
            torch.randn(4 * size, size, dtype=torch.float64, requires_grad=True),
            torch.randn(batch, size, dtype=torch.float64, requires_grad=True),
            torch.randn(batch, size, dtype=torch.float64, requires_grad=True)]
    assert torch.autograd.gradcheck(LSTMRecurrence.apply, args)


@pytest.mark.parametrize("length", [1, 2, 7])
def test_lstm_layer_equals_explicit_equations_with_an_initial_state(length):
    torch.manual_seed(1)
    lstm = nn.LSTM(6, 5, num_layers=2, batch_first=True)
    inputs = torch.randn(3, length, 5)
    h0, c0 = torch.randn(3, 5, requires_grad=True), torch.randn(3, 5, requires_grad=True)
    hidden, cell = lstm_layer(lstm, inputs, layer=1, state=(h0, c0))
    hidden_ref, cell_ref = explicit_lstm(lstm, 1, inputs, h0, c0)
    torch.testing.assert_close(hidden, hidden_ref)
    torch.testing.assert_close(cell, cell_ref)
    with torch.no_grad():  # inference keeps no activations: the same numbers (to rounding)
        inference = lstm_layer(lstm, inputs, layer=1, state=(h0, c0))
    torch.testing.assert_close(inference, (hidden_ref, cell_ref))
    weights = torch.randn_like(hidden), torch.randn_like(cell)
    wrt = [h0, c0, lstm.weight_ih_l1, lstm.weight_hh_l1, lstm.bias_ih_l1, lstm.bias_hh_l1]
    grads = torch.autograd.grad((hidden * weights[0]).sum() + (cell * weights[1]).sum(), wrt)
    grads_ref = torch.autograd.grad((hidden_ref * weights[0]).sum() + (cell_ref * weights[1]).sum(), wrt)
    for grad, grad_ref in zip(grads, grads_ref):
        torch.testing.assert_close(grad, grad_ref)


def test_constant_input_columns_added_once_per_sentence():
    torch.manual_seed(2)
    lstm = nn.LSTM(4 + 3, 5, batch_first=True)
    words, condition = torch.randn(2, 6, 4), torch.randn(2, 3)
    extra = condition @ lstm.weight_ih_l0[:, 4:].T
    hidden, cell = lstm_layer(lstm, words, extra_gates=extra, input_columns=slice(0, 4))
    expected, _ = lstm(torch.cat([words, condition.unsqueeze(1).expand(-1, 6, -1)], dim=-1))
    torch.testing.assert_close(hidden, expected)


@pytest.mark.parametrize("options", [{"bidirectional": True}, {"proj_size": 2}, {"batch_first": False},
                                     {"bias": False}])
def test_lstm_layer_refuses_lstms_it_does_not_run(options):
    lstm = nn.LSTM(4, 3, **{"batch_first": True, **options})
    with pytest.raises(ValueError, match="lstm_layer runs one-directional, batch_first nn.LSTMs"):
        lstm_layer(lstm, torch.randn(2, 5, 4))


def test_policy_stepwise_on_cpu_library_under_autocast_and_forcible():
    sequence, step = torch.zeros(2, 3, 4), torch.zeros(2, 1, 4)
    assert use_stepwise_lstm(sequence) and use_stepwise_lstm(step)
    assert use_stepwise_lstm(sequence, training_only=True) and not use_stepwise_lstm(step, training_only=True)
    with torch.no_grad():
        assert use_stepwise_lstm(sequence) and not use_stepwise_lstm(sequence, training_only=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not use_stepwise_lstm(sequence)
    with forced_lstm_path(False):
        assert not use_stepwise_lstm(sequence)
        with pytest.raises(RuntimeError), forced_lstm_path(True):
            assert use_stepwise_lstm(step, training_only=True)
            raise RuntimeError
        assert not use_stepwise_lstm(sequence)  # the inner block restored the outer setting, exception or not
    assert recurrence_hrvae.FORCE_STEPWISE is None


def run_both_paths(model, batch):
    """Loss and every gradient of `model` on `batch`, by the stepwise and by the library path (same seed)."""
    results = []
    for stepwise in (True, False):
        model.zero_grad()
        torch.manual_seed(3)
        with forced_lstm_path(stepwise):
            out = model(**batch, labels=batch["input_ids"])
        out.loss.backward()
        results.append((out, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}))
    return results


def assert_paths_agree(model, batch):
    (stepwise, grads), (library, grads_ref) = run_both_paths(model, batch)
    torch.testing.assert_close(stepwise.logits, library.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stepwise.loss, library.loss)
    assert grads.keys() == grads_ref.keys() and len(grads) == len(list(model.parameters()))
    for name in grads:
        torch.testing.assert_close(grads[name], grads_ref[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("setting", ["standard", "inputless"])
@pytest.mark.parametrize("preset", ["hrvae", "vae-lstm-base"])
def test_stepwise_and_library_paths_agree(make_model, batch, setting, preset):
    baseline = {} if preset == "hrvae" else {"kl_regularisation": "last", "latent_size": 6}
    model = make_model(setting=setting, num_layers=3, **baseline)
    assert_paths_agree(model.eval(), batch)  # z = mu, no dropout
    with torch.no_grad():  # evaluation: the stepwise recurrence keeps no activations
        logits = [forced(model, batch) for forced in (stepwise_logits, library_logits)]
    torch.testing.assert_close(logits[0], logits[1], atol=1e-5, rtol=1e-5)
    for module in model.modules():  # dropout off: the two paths draw their dropout masks differently
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        elif isinstance(module, nn.LSTM):
            module.dropout = 0.0
    assert_paths_agree(model.train(), batch)  # a sampled z, the same under one seed


def stepwise_logits(model, batch):
    with forced_lstm_path(True):
        return model(**batch).logits


def library_logits(model, batch):
    with forced_lstm_path(False):
        return model(**batch).logits


def test_stepwise_decoder_drops_out_between_its_layers_in_training(make_model, batch):
    model = make_model(num_layers=3)
    calls = []
    model.decoder.dropout.register_forward_hook(lambda module, args, out: calls.append(module.training))
    stepwise_logits(model.train(), batch)
    assert calls == [True] * 3  # the embeddings, then after layers 1 and 2 (as nn.LSTM(dropout=p)), not after 3
    stepwise_logits(model.eval(), batch)
    assert calls[3:] == [False] * 3


def test_decoder_runs_nn_lstm_for_single_steps_and_without_gradients(make_model, batch):
    model = make_model().eval()
    steps = []
    model.decoder.lstm.register_forward_hook(lambda module, args, out: steps.append(args[0].shape[1]))
    never_end = LogitsProcessorList([SuppressTokensLogitsProcessor([model.config.eos_token_id])])
    model.generate(latent=torch.randn(2, model.config.latent_dim), max_new_tokens=4, logits_processor=never_end)
    assert steps == [1] * 4  # generation: one nn.LSTM call per token
    model(**batch)  # teacher forcing with gradients: the stepwise path
    assert steps == [1] * 4
    with torch.no_grad():  # evaluation: nn.LSTM over the whole sequence
        model(**batch)
    assert steps == [1] * 4 + [batch["input_ids"].shape[1] - 1]


@pytest.mark.parametrize("preset", ["hrvae", "vae-cnn"])
@pytest.mark.parametrize("setting", ["standard", "inputless"])
@pytest.mark.parametrize("path", [None, True, False])
def test_decoding_one_sentence_for_several_latents_equals_repeating_it(make_model, batch, preset, setting, path):
    # importance sampling decodes every sentence from K latents: decode(..., repeats=K) must equal K copies
    model = make_model(setting=setting, num_layers=3, **PRESETS[preset]).eval()
    ids, repeats = batch["input_ids"], 3
    latent = torch.randn(ids.shape[0] * repeats, model.config.latent_dim, requires_grad=True)
    with forced_lstm_path(path):
        with torch.no_grad():
            torch.testing.assert_close(model.decode(latent, ids, repeats=repeats),
                                       model.decode(latent, ids.repeat_interleave(repeats, dim=0)),
                                       atol=1e-6, rtol=1e-5)
        gradients = []
        for logits in (model.decode(latent, ids, repeats=repeats),
                       model.decode(latent, ids.repeat_interleave(repeats, dim=0))):
            weights = torch.linspace(-1, 1, logits.numel()).view_as(logits)
            gradients.append(torch.autograd.grad((logits * weights).sum(), [latent, *model.decoder.parameters()]))
    for got, expected in zip(*gradients):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_repeated_sentences_share_the_first_layers_input_gates_on_the_cpu(make_model, batch, monkeypatch):
    model = make_model().eval()
    calls = []
    original = decoders_hrvae.lstm_layer
    monkeypatch.setattr(decoders_hrvae, "lstm_layer",
                        lambda *args, **kwargs: calls.append(kwargs.get("repeats")) or original(*args, **kwargs))
    with torch.no_grad():
        model.decode(torch.randn(4 * len(batch["input_ids"]), model.config.latent_dim), batch["input_ids"], 4)
    assert calls == [4]  # the first layer from the sentences' gates; the second by nn.LSTM's kernel (no gradients)


def test_repeats_are_checked(make_model, batch):
    model = make_model()
    ids = batch["input_ids"]
    latent = torch.randn(2 * ids.shape[0], model.config.latent_dim)
    with pytest.raises(ValueError, match="repeats > 1 .* is for evaluation"):
        model.train().decode(latent, ids, repeats=2)
    model.eval()
    with pytest.raises(ValueError, match=r"latent has \d+ rows but input_ids has \d+ x repeats=3"):
        model.decode(latent, ids, repeats=3)
    with pytest.raises(ValueError, match="positive integer"):
        model.decoder(ids, model.decoder.initial_state(latent), 0)
    lstm = nn.LSTM(4, 3, batch_first=True)
    with pytest.raises(ValueError, match="needs the extra_gates"):
        lstm_layer(lstm, torch.randn(2, 5, 4), repeats=2)
