import json
import math
import os
import subprocess
import sys

import pytest
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from transformers import AutoModel, AutoTokenizer, DataCollatorWithPadding

from conftest import REPO_ROOT
from hf_hrvae.training.data import load_text_splits, tokenize_splits
from hf_hrvae.evaluation import (
    IW_STREAM,
    EvaluationArguments,
    active_units,
    evaluate_model,
    iw_log_weights,
    iw_nll_from_log_weights,
    mutual_information,
    run_evaluation,
    sentence_noise,
)
from hf_hrvae.training import TrainingArguments, train

NUM_SENTENCES = 30


@pytest.fixture(scope="module")
def trained(e2e_folder, tmp_path_factory):
    """A small model trained for a few epochs (enough for a posterior that is not the prior)."""
    out = tmp_path_factory.mktemp("trained")
    train(TrainingArguments(
        dataset_name=e2e_folder, output_dir=str(out), max_train_samples=256, max_eval_samples=NUM_SENTENCES,
        per_device_train_batch_size=32, embedding_size=16, hidden_size=16, num_train_epochs=6,
        learning_rate=3e-3, setting="inputless", seed=0,
    ))
    model = AutoModel.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    data = tokenize_splits(load_text_splits(e2e_folder, max_eval_samples=NUM_SENTENCES), tokenizer)["test"]
    return out, model, tokenizer, data.remove_columns("length")


def assert_same_metrics(first, second, rel=1e-6):
    """Equal up to fp32 rounding: `rel` of each value, or 1e-6 nats for a difference of large terms near zero
    (MI; the summation order of the CPU's kernels moves it by ~4e-8 on an AVX2 machine)."""
    for family in ("valid", "paper_protocol"):
        assert first[family].keys() == second[family].keys()
        for name, value in first[family].items():
            expected = value if isinstance(value, str) else pytest.approx(value, rel=rel, abs=1e-6)
            assert second[family][name] == expected, (family, name)


def evaluate(trained, batch_size=8, **kwargs):
    _, model, tokenizer, data = trained
    loader = DataLoader(data, batch_size=batch_size, collate_fn=DataCollatorWithPadding(tokenizer))
    return evaluate_model(model, loader, Accelerator(cpu=True), seed=0, **kwargs)


@pytest.fixture(scope="module")
def by_k(trained):
    return {k: evaluate(trained, iw_samples=k) for k in (1, 10, 100)}


def test_iw_nll_is_below_the_elbo_and_tightens_with_k(by_k):
    elbo = by_k[100]["valid"]["elbo_nll"]
    iw = {k: result["valid"]["iw_nll"] for k, result in by_k.items()}
    assert iw[100] < iw[10] < iw[1]
    assert iw[100] <= elbo
    assert by_k[1]["valid"]["elbo_nll"] == elbo  # the ELBO does not depend on k


def test_iw_with_one_sample_is_a_single_sample_elbo(trained):
    _, model, tokenizer, data = trained
    batch = DataCollatorWithPadding(tokenizer)(data.select(range(6)).to_list())
    ids, mask, index = batch["input_ids"], batch["attention_mask"], batch["index"]
    mu, logvar = model.encode(ids, mask)
    noise = sentence_noise(index, 1, mu.shape[1], seed=0, stream=IW_STREAM)[:, 0]
    z = mu + noise * torch.exp(0.5 * logvar)
    log_q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    single_sample_elbo = model.token_nll(model.decode(z, ids), ids, mask) + log_q - log_p
    log_weights = iw_log_weights(model, ids, mask, mu, logvar, index, num_samples=1, seed=0)
    torch.testing.assert_close(iw_nll_from_log_weights(log_weights), single_sample_elbo, atol=1e-4, rtol=1e-6)


def test_perplexities_kl_and_paper_protocol_follow_their_formulas(by_k):
    result = by_k[10]
    valid, paper = result["valid"], result["paper_protocol"]
    count, tokens = result["num_sentences"], result["num_tokens"]
    assert count == NUM_SENTENCES
    assert valid["ppl"] == pytest.approx(math.exp(valid["iw_nll"] * count / tokens))
    assert valid["elbo_ppl"] == pytest.approx(math.exp(valid["elbo_nll"] * count / tokens))
    assert valid["elbo_nll"] == pytest.approx(valid["reconstruction"] + valid["kl"])
    assert valid["kl"] > 0 and valid["kl_holistic"] > 0
    assert paper["kl"] == valid["kl_holistic"]
    assert paper["ppl"] == pytest.approx(math.exp(paper["nll"] * count / (tokens + count)))  # n + 2 per sentence
    assert paper["label"] == "comparison only, not a bound"
    assert set(valid) == {"reconstruction", "kl", "kl_holistic", "elbo_nll", "iw_nll", "iw_samples", "ppl",
                          "elbo_ppl", "mutual_info", "active_units"}


def test_mutual_information_is_between_zero_and_log_n(trained, by_k):
    # This tiny model barely uses z (MI ~ 0: the Monte Carlo estimate may fall a hair below 0), so also evaluate
    # a copy whose encoder is sharpened: distinct, narrow posteriors, an MI well above 0 and still <= log N.
    assert -0.1 < by_k[10]["valid"]["mutual_info"] <= math.log(NUM_SENTENCES)
    out, model, tokenizer, data = trained
    sharp = AutoModel.from_pretrained(out).eval()
    with torch.no_grad():
        sharp.encoder.to_mu.weight.mul_(30)
        sharp.encoder.to_logvar.bias.sub_(4)
    mi = evaluate((out, sharp, tokenizer, data))["valid"]["mutual_info"]
    assert 1.0 < mi <= math.log(NUM_SENTENCES)


def test_mutual_information_on_constructed_posteriors():
    torch.manual_seed(0)
    n, d = 50, 4
    same_mu, logvar = torch.zeros(n, d), torch.zeros(n, d)
    z = same_mu + torch.randn(n, d)
    assert mutual_information(same_mu, logvar, z) == pytest.approx(0.0, abs=1e-9)  # x tells nothing about z
    apart = torch.arange(n, dtype=torch.float).unsqueeze(1).repeat(1, d) * 10
    tight = torch.full((n, d), -10.0)
    z = apart + torch.randn(n, d) * math.exp(-5)
    assert mutual_information(apart, tight, z) == pytest.approx(math.log(n), abs=1e-6)  # z identifies x


def test_active_units_on_constructed_posteriors():
    torch.manual_seed(0)
    mu = torch.zeros(200, 6)
    mu[:, :3] = torch.randn(200, 3)  # variance ~1 over the data: active
    mu[:, 3] = torch.randn(200) * 0.05  # variance ~0.0025 < 0.01: inactive
    assert active_units(mu) == 3


def test_batch_size_and_chunking_do_not_change_the_numbers(trained, by_k):
    assert_same_metrics(by_k[10], evaluate(trained, batch_size=3, iw_samples=10, rows_per_chunk=7))


def test_bleu_of_reconstructions(trained):
    result = evaluate(trained, tokenizer=trained[2])
    assert 0 <= result["valid"]["bleu"] <= 100 and result["valid"]["bleu_num_beams"] == 1
    assert 0 <= result["valid"]["reconstruction_repeat_rate"] <= 1
    assert result["valid"]["reference_repeat_rate"] == 0  # no E2E test sentence of the fixture says "a a"


def test_repeat_rate_counts_the_reconstructions_that_stutter(trained, monkeypatch):
    _, model, tokenizer, data = trained
    stutter = tokenizer(["the the"], return_tensors="pt")["input_ids"][0]
    fine = tokenizer(["the eagle"], return_tensors="pt")["input_ids"][0]
    calls = []

    def generate(self, input_ids, **kwargs):  # every other sentence stutters
        calls.append(1)
        rows = [stutter if i % 2 == 0 else fine for i in range(input_ids.shape[0])]
        return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=self.config.pad_token_id)

    monkeypatch.setattr(type(model), "generate", generate)
    result = evaluate(trained, tokenizer=tokenizer, batch_size=NUM_SENTENCES)["valid"]
    assert calls and result["reconstruction_repeat_rate"] == pytest.approx(0.5)


def test_bleu_of_beam_search_reconstructions(trained, monkeypatch):
    _, model, tokenizer, data = trained
    seen = []
    generate = type(model).generate
    monkeypatch.setattr(type(model), "generate", lambda self, **kw: seen.append(kw["num_beams"]) or generate(self, **kw))
    greedy = evaluate(trained, tokenizer=tokenizer)["valid"]
    beams = evaluate(trained, tokenizer=tokenizer, num_beams=3)["valid"]
    assert beams["bleu_num_beams"] == 3 and 0 <= beams["bleu"] <= 100 and set(seen) == {1, 3}
    assert {k: v for k, v in beams.items() if "bleu" not in k} == {k: v for k, v in greedy.items() if "bleu" not in k}


def test_decoding_tricks_are_reported_beside_the_plain_reconstructions(trained, e2e_folder, tmp_path, monkeypatch):
    _, model, tokenizer, data = trained
    seen = []
    generate = type(model).generate
    monkeypatch.setattr(type(model), "generate",
                        lambda self, **kw: seen.append(kw.get("no_repeat_ngram_size")) or generate(self, **kw))
    plain = evaluate(trained, tokenizer=tokenizer)
    tricked = evaluate(trained, tokenizer=tokenizer, decoding_tricks={"no_repeat_ngram_size": 1})
    assert "decoding_tricks" not in plain and set(seen) == {None, 1}
    assert tricked["valid"] == plain["valid"] and tricked["paper_protocol"] == plain["paper_protocol"]
    block = tricked["decoding_tricks"]
    assert block["label"] == "beside plain decoding, never instead" and block["no_repeat_ngram_size"] == 1
    assert plain["valid"]["reconstruction_repeat_rate"] > 0 and block["reconstruction_repeat_rate"] == 0
    assert 0 <= block["bleu"] <= 100
    # and from the command line's arguments, into the output file
    args = EvaluationArguments(model_name_or_path=str(trained[0]), dataset_name=e2e_folder, max_samples=8,
                               iw_samples=0, prior_samples=0, repetition_penalty=1.5,
                               output_file=str(tmp_path / "eval.json"))
    run_evaluation(args)
    written = json.loads((tmp_path / "eval.json").read_text())
    assert written["decoding_tricks"]["repetition_penalty"] == 1.5 and "no_repeat_ngram_size" not in written[
        "decoding_tricks"]


@pytest.mark.parametrize("flags, message", [
    ({"repetition_penalty": 0.0}, "repetition_penalty must be > 0"),
    ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size >= 0"),
    ({"no_repeat_ngram_size": 2, "no_bleu": True}, "nothing with --no_bleu"),
    ({"no_back_to_back_repeats": True, "no_bleu": True}, "nothing with --no_bleu"),
])
def test_bad_decoding_trick_flags(flags, message):
    with pytest.raises(ValueError, match=message):
        EvaluationArguments(model_name_or_path="m", dataset_name="d", **flags)
    assert EvaluationArguments(model_name_or_path="m", dataset_name="d").decoding_tricks() == {}
    assert EvaluationArguments(model_name_or_path="m", dataset_name="d", no_back_to_back_repeats=True,
                               no_repeat_ngram_size=2).decoding_tricks() == {"no_repeat_ngram_size": 2,
                                                                            "no_back_to_back_repeats": True}


def test_one_and_two_processes_agree(trained, e2e_folder, tmp_path):
    out = trained[0]
    flags = ["--model_name_or_path", out, "--dataset_name", e2e_folder, "--split", "test", "--iw_samples", 5,
             "--max_samples", NUM_SENTENCES, "--batch_size", 4]
    script = str(REPO_ROOT / "examples" / "evaluate.py")
    results = {}
    for processes in (1, 2):
        output = tmp_path / f"eval_{processes}.json"
        launcher = [sys.executable] if processes == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        command = [*launcher, script, *map(str, flags), "--output_file", str(output)]
        run = subprocess.run(command, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "ACCELERATE_USE_CPU": "true"})
        assert run.returncode == 0, run.stderr[-3000:]
        results[processes] = json.loads(output.read_text())
    assert results[2]["num_processes"] == 2 and results[2]["num_sentences"] == NUM_SENTENCES
    assert_same_metrics(results[1], results[2])
