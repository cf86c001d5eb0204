import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import HfApi

from hf_hrvae.evaluation import EvaluationArguments, run_evaluation
from hf_hrvae.errors import ModelNotFoundError
from hf_hrvae.hub import build_model_card, export_folder, files_to_upload, push_folder
from hf_hrvae.training import TrainingArguments, train
from conftest import REPO_ROOT
from test_save_load import load_without_hf_hrvae


@pytest.fixture(scope="module")
def run_folder(e2e_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("hub_run")
    train(TrainingArguments(
        dataset_name=e2e_folder, output_dir=str(out), max_train_samples=64, max_eval_samples=16,
        per_device_train_batch_size=16, embedding_size=16, hidden_size=16, num_train_epochs=1, seed=0,
    ), command="python examples/train.py --dataset_name e2e --output_dir out")
    run_evaluation(EvaluationArguments(model_name_or_path=str(out), dataset_name=e2e_folder, split="test",
                                       iw_samples=5, max_samples=16, output_file=str(out / "eval_test.json")))
    return out


def front_matter(card_text):
    assert card_text.startswith("---\n")
    return yaml.safe_load(card_text.split("---\n")[1])


def test_card_metadata_comes_from_the_run(run_folder):
    card = str(build_model_card(run_folder, "someone/hrvae-e2e", revision="v1"))
    meta = front_matter(card)
    evaluation = json.loads((run_folder / "eval_test.json").read_text())
    assert meta["library_name"] == "transformers" and meta["language"] == "en" and meta["license"] == "apache-2.0"
    assert {"vae", "hr-vae", "text-generation"} <= set(meta["tags"])
    assert meta["datasets"] == ["tuetschek/e2e_nlg"]  # the local copy is recognised as the E2E corpus
    results = meta["model-index"][0]["results"]
    recorded = {m["name"]: m["value"] for r in results for m in r["metrics"]}
    assert recorded["IW-NLL, k=5 (importance-weighted bound, nats/sentence)"] == round(evaluation["valid"]["iw_nll"], 4)
    assert recorded["ELBO-NLL (upper bound, nats/sentence)"] == round(evaluation["valid"]["elbo_nll"], 4)
    assert recorded["NLL, paper protocol (comparison only, not a bound)"] == round(evaluation["paper_protocol"]["nll"], 4)
    assert recorded["Active units"] == evaluation["valid"]["active_units"]
    assert all(r["dataset"]["split"] == "test" for r in results)
    assert 'trust_remote_code=True, revision="v1"' in card and "import hf_hrvae" in card
    assert "python examples/train.py --dataset_name e2e --output_dir out" in card
    assert "model.interpolate(" in card and "@inproceedings{li2019stable" in card
    assert "training_curves.png" in card and "not bounds" in card
    assert "the exported model is epoch 1 of 1, the best by validation ELBO-NLL (`--metric_for_best_model elbo_nll`)" in card
    valid = evaluation["valid"]
    assert recorded["Greedy reconstructions with a token repeated back-to-back"] == \
        round(valid["reconstruction_repeat_rate"], 4)
    assert recorded["Prior samples (top-p 0.9) with a token repeated back-to-back"] == \
        round(valid["prior_top_p_repeat_rate"], 4)
    assert f"| {100 * valid['reconstruction_repeat_rate']:.1f} % ({100 * valid['reference_repeat_rate']:.1f} %) |" in card
    assert "learning rate 0.0001 (constant; Adam)" in card and "warm-up" not in card  # constant ignores warm-up


def test_card_says_the_schedule_and_the_model_a_run_started_from(run_folder, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("config.json", "train_results.json"):
        (folder / name).write_text((run_folder / name).read_text())
    training = json.loads((folder / "train_results.json").read_text())
    training.update(lr_schedule={"type": "cosine", "learning_rate": 5e-4, "num_warmup_steps": 300,
                                 "num_training_steps": 23030}, initialised_from="/home/me/models/hrvae-e2e-inputless")
    (folder / "train_results.json").write_text(json.dumps(training))
    card = str(build_model_card(folder, "someone/hrvae-e2e"))
    assert ("learning rate 0.0005, `cosine` schedule over 23030 steps after 300 warm-up steps (Adam); started from "
            "the weights of `hrvae-e2e-inputless` (a fresh optimizer)") in card
    assert "/home/me" not in card and "in all" not in card  # the start's own record is not on this machine
    earlier = tmp_path / "earlier"  # a warm start from a run that was itself warm-started: the card adds the chain
    earlier.mkdir()
    (earlier / "train_results.json").write_text(json.dumps({"epochs": 11, "initialised_from": str(tmp_path / "s")}))
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "train_results.json").write_text(json.dumps({"epochs": 25, "initialised_from": None}))
    (folder / "train_results.json").write_text(json.dumps(training | {"initialised_from": str(earlier),
                                                                      "epochs": 12}))
    card = str(build_model_card(folder, "someone/hrvae-e2e"))
    assert ("started from the weights of `earlier` (a fresh optimizer), trained before as `earlier` (11 epochs) "
            "from `s` (25 epochs): 48 epochs in all") in card
    training["arguments"]["dataset_name"] = str(tmp_path / "private" / "e2e_nlg")
    (folder / "train_results.json").write_text(json.dumps(training))
    card = str(build_model_card(folder, "someone/hrvae-e2e"))
    assert "- Data: `e2e_nlg` (Hub id: tuetschek/e2e_nlg)" in card and str(tmp_path) not in card


def test_card_of_a_run_on_its_own_files_names_them_and_the_corpus_it_was_evaluated_on(run_folder, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "train_results.json", "eval_test.json"):
        (folder / name).write_bytes((run_folder / name).read_bytes())
    training = json.loads((folder / "train_results.json").read_text())
    training["arguments"].update(dataset_name=None, train_file="/home/me/data/train.txt",
                                 validation_file="/home/me/data/validation.txt", keep_vocabulary=True)
    training["vocabulary"] = {"vocabulary": "kept", "min_frequency": 1, "added_words": 0}
    (folder / "train_results.json").write_text(json.dumps(training))
    card = str(build_model_card(folder, "someone/hrvae-e2e"))
    assert ("- Data: the run's own files `train.txt` (training) and `validation.txt` (validation) (`--train_file`, "
            "`--validation_file`); vocabulary: that of the model it started from (`--keep_vocabulary`);") in card
    assert "/home/me" not in card and "datasets" not in front_matter(card)  # its training data is no Hub corpus
    # its test numbers are the E2E test split's, and the model-index says so
    assert {r["dataset"]["name"] for r in front_matter(card)["model-index"][0]["results"]} == {"tuetschek/e2e_nlg"}
    training["vocabulary"] = {"vocabulary": "extended", "min_frequency": 4, "added_words": 2}
    (folder / "train_results.json").write_text(json.dumps(training))
    card = str(build_model_card(folder, "someone/hrvae-e2e"))
    assert ("vocabulary: that of the model it started from, extended by the training words seen at least 4 times "
            "(2 added)") in card


def test_card_says_which_metric_chose_the_epoch(run_folder, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("config.json", "train_results.json"):
        (folder / name).write_text((run_folder / name).read_text())
    training = json.loads((folder / "train_results.json").read_text())
    training.update(metric_for_best_model="iw_nll", best_epoch=3, epochs=7,
                    best_validation={"epoch": 3, "iw_nll": 101.25, "iw_samples": 10, "elbo_nll": 104.5, "kl": 9.75,
                                     "active_units": 41})
    (folder / "train_results.json").write_text(json.dumps(training))
    card = str(build_model_card(folder, "someone/hrvae-e2e"))
    assert "epoch 3 of 7, the best by validation IW-NLL, k = 10 (`--metric_for_best_model iw_nll`)" in card
    assert "ELBO-NLL 104.50, IW-NLL 101.25, KL of the used z 9.75, active units 41" in card
    del training["epochs_counted_from"], training["metric_for_best_model"]  # a record of an earlier version
    (folder / "train_results.json").write_text(json.dumps(training))
    assert "epoch 4 of 7, the best by validation ELBO-NLL" in str(build_model_card(folder, "someone/hrvae-e2e"))


def test_local_export_is_exactly_what_push_uploads(run_folder, monkeypatch, tmp_path):
    recorder = Recorder()
    recorder.install(monkeypatch)
    push_folder(run_folder, "someone/hrvae-e2e")
    uploaded = {op.path_in_repo: op.path_or_fileobj for op in recorder.calls[-1][2]["operations"]}
    target = tmp_path / "models" / "hrvae-e2e"
    names = export_folder(run_folder, target, "someone/hrvae-e2e")
    assert sorted(names) == sorted(uploaded) == sorted(path.name for path in target.iterdir())
    for name, source in uploaded.items():
        expected = source if isinstance(source, bytes) else Path(source).read_bytes()
        assert (target / name).read_bytes() == expected, name
    with pytest.raises(FileExistsError, match="not empty"):
        export_folder(run_folder, target, "someone/hrvae-e2e")
    script = subprocess.run([sys.executable, REPO_ROOT / "examples" / "push_to_hub.py", "--model_name_or_path",
                             run_folder, "--repo_id", "someone/hrvae-e2e", "--local_dir", tmp_path / "again"],
                            capture_output=True, text=True, timeout=300)
    assert script.returncode == 0, script.stderr[-2000:]
    assert sorted(path.name for path in (tmp_path / "again").iterdir()) == sorted(names)


def test_uploaded_records_show_no_path_of_the_training_machine(run_folder, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder)
    record = json.loads((folder / "train_results.json").read_text())
    home, here = os.path.expanduser("~"), os.getcwd()
    record |= {"initialised_from": f"{home}/runs/previous", "command": f"python {here}/examples/train.py"}
    (folder / "train_results.json").write_text(json.dumps(record))
    evaluation = json.loads((folder / "eval_test.json").read_text())
    (folder / "eval_test.json").write_text(json.dumps(evaluation | {"command": f"python {here}/examples/evaluate.py"}))
    export_folder(folder, tmp_path / "export", "someone/hrvae-e2e")
    exported = json.loads((tmp_path / "export" / "train_results.json").read_text())
    assert exported == record | {"initialised_from": "~/runs/previous", "command": "python examples/train.py"}
    exported = json.loads((tmp_path / "export" / "eval_test.json").read_text())
    assert exported == evaluation | {"command": "python examples/evaluate.py"}


def test_card_lists_every_invocation_of_a_resumed_run(run_folder, tmp_path, e2e_folder):
    out = tmp_path / "resumed"
    flags = dict(dataset_name=e2e_folder, output_dir=str(out), max_train_samples=32, max_eval_samples=8,
                 per_device_train_batch_size=16, embedding_size=12, hidden_size=8, checkpointing_steps="epoch")
    train(TrainingArguments(**flags, num_train_epochs=1), command="python examples/train.py --first")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the second invocation on another number of threads: each says its own
    try:
        train(TrainingArguments(**flags, num_train_epochs=3, resume_from_checkpoint="latest"),
              command="python examples/train.py --second")
    finally:
        torch.set_num_threads(threads)
    training = json.loads((out / "train_results.json").read_text())
    assert [(i["command"].split()[-1], i["from_epoch"], i["to_epoch"]) for i in training["invocations"]] == [
        ("--first", 0, 1), ("--second", 1, 3)]
    first, second = (i["device"] for i in training["invocations"])
    assert training["device"] == second
    if not torch.cuda.is_available():
        assert f", {threads} threads (torch" in first and ", 1 threads (torch" in second
    card = str(build_model_card(out, "someone/x"))
    assert "2 invocations of the same run" in card
    assert "# epoch 1\npython examples/train.py --first\n# epochs 2-3\npython examples/train.py --second" in card


def test_card_includes_the_folders_hand_written_notes(run_folder, tmp_path):
    folder = tmp_path / "noted"
    folder.mkdir()
    for name in ("config.json", "train_results.json"):
        (folder / name).write_text((run_folder / name).read_text())
    assert "## More about this model" not in str(build_model_card(folder, "someone/x"))
    (folder / "card_notes.md").write_text("What the latent knows: [latent.md](https://example.org/latent.md).\n")
    card = str(build_model_card(folder, "someone/x"))
    assert "## More about this model\n\nWhat the latent knows: [latent.md](https://example.org/latent.md).\n\n## Limitations" in card


class Recorder:
    """HfApi with every network method replaced: it records what would be sent."""

    def __init__(self):
        self.calls = []

    def install(self, monkeypatch):
        for name in ("create_repo", "create_branch", "create_commit"):
            monkeypatch.setattr(HfApi, name, lambda api, *args, _name=name, **kwargs: self.calls.append((_name, args, kwargs)))


def test_push_commits_exactly_the_listed_files(run_folder, monkeypatch, tmp_path):
    recorder = Recorder()
    recorder.install(monkeypatch)
    (run_folder / "notes.txt").write_text("not part of the model")
    push_folder(run_folder, "someone/hrvae-e2e", private=True, revision="v1", commit_message="first")
    names = [call[0] for call in recorder.calls]
    assert names == ["create_repo", "create_branch", "create_commit"]
    assert recorder.calls[0][2]["private"] is True
    commit = recorder.calls[2][2]
    assert commit["revision"] == "v1" and commit["commit_message"] == "first"
    uploaded = sorted(op.path_in_repo for op in commit["operations"])
    assert uploaded == sorted([
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "configuration_hrvae.py",
        "modeling_hrvae.py", "generation_hrvae.py", "decoders_hrvae.py", "latent_hrvae.py", "recurrence_hrvae.py",
        "losses_hrvae.py", "generation_config.json", "training_curves.png",
        "train_results.json", "eval_test.json", "README.md",
    ])
    assert uploaded == sorted(files_to_upload(run_folder) + ["README.md"])

    # the folder as uploaded loads where hf_hrvae cannot be imported, and generates
    hub_copy = tmp_path / "hub_copy"
    hub_copy.mkdir()
    for op in commit["operations"]:
        source = op.path_or_fileobj
        data = source if isinstance(source, bytes) else open(source, "rb").read()
        (hub_copy / op.path_in_repo).write_bytes(data)
    assert load_without_hf_hrvae(hub_copy, tmp_path)["ids"].shape[0] == 1


def test_token_is_never_written(run_folder, monkeypatch):
    secret = "hf_THISISNOTAREALTOKEN1234567890"
    monkeypatch.setenv("HF_TOKEN", secret)
    recorder = Recorder()
    recorder.install(monkeypatch)
    push_folder(run_folder, "someone/hrvae-e2e")
    for op in recorder.calls[-1][2]["operations"]:
        source = op.path_or_fileobj
        data = source if isinstance(source, bytes) else open(source, "rb").read()
        assert secret.encode() not in data, op.path_in_repo


def test_incomplete_folder_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="lacks model.safetensors, tokenizer.json"):
        files_to_upload(tmp_path)


def test_push_to_hub_flag_needs_a_repository():
    with pytest.raises(ValueError, match="--push_to_hub needs --hub_model_id"):
        TrainingArguments(dataset_name="e2e", output_dir="x", push_to_hub=True)


def test_card_names_the_system_of_a_baseline(tmp_path):
    from hf_hrvae import HRVAEConfig

    HRVAEConfig.from_preset("vmf-vae", vocab_size=50, setting="inputless").save_pretrained(tmp_path)
    card = str(build_model_card(tmp_path, "someone/vmf-e2e"))
    assert "vMF-VAE (Xu & Durrett, 2018)" in card and "preset `vmf-vae`" in card and "**inputless**" in card
    assert "No evaluation was run" in card


def test_card_names_what_the_paper_does_not_do(tmp_path):
    from hf_hrvae import HRVAEConfig

    HRVAEConfig(vocab_size=50, setting="inputless").save_pretrained(tmp_path / "paper")
    assert "Not in the paper" not in str(build_model_card(tmp_path / "paper", "someone/plain"))
    HRVAEConfig(vocab_size=50, setting="inputless", dropout=0.0, neighbour_unlikelihood=5.0,
                repeat_unlikelihood=2.0, prior_repeat_unlikelihood=3.0, decoder_positions=True).save_pretrained(tmp_path / "variant")
    card = str(build_model_card(tmp_path / "variant", "someone/variant"))
    assert "Not in the paper: the unlikelihood of each position's gold neighbours added to the loss at weight 5" in card
    assert "own back-to-back repeats added to the loss at weight 2 (`repeat_unlikelihood`)" in card
    assert "greedy output of prior samples added to the loss at weight 3 (`prior_repeat_unlikelihood`)" in card
    assert "`decoder_positions`" in card and "dropout 0 in training (the paper: 0.5)" in card


def test_train_pushes_at_the_end_when_asked(e2e_folder, tmp_path, monkeypatch):
    recorder = Recorder()
    recorder.install(monkeypatch)
    train(TrainingArguments(
        dataset_name=e2e_folder, output_dir=str(tmp_path / "pushed"), max_train_samples=32, max_eval_samples=8,
        per_device_train_batch_size=16, embedding_size=8, hidden_size=8, num_train_epochs=1,
        push_to_hub=True, hub_model_id="someone/tiny", hub_private=True,
    ))
    names = [call[0] for call in recorder.calls]
    assert names == ["create_repo", "create_commit"] and recorder.calls[0][1] == ("someone/tiny",)
    assert recorder.calls[0][2]["private"] is True
    uploaded = {op.path_in_repo for op in recorder.calls[1][2]["operations"]}
    assert {"model.safetensors", "README.md", "train_results.json", "training_curves.png"} <= uploaded


def test_card_refuses_an_evaluation_of_other_weights(run_folder, tmp_path):
    import shutil

    from hf_hrvae.errors import EvaluationMismatchError
    from hf_hrvae.hub import weights_sha256

    evaluation = json.loads((run_folder / "eval_test.json").read_text())
    assert evaluation["model_sha256"] == weights_sha256(run_folder)  # evaluate.py records what it measured
    other = tmp_path / "other"
    shutil.copytree(run_folder, other)
    from safetensors.torch import load_file, save_file

    tensors = load_file(other / "model.safetensors")
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1
    save_file(tensors, other / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(EvaluationMismatchError, match="eval_test.json was measured on other weights"):
        build_model_card(other, "someone/x")
    (other / "eval_test.json").write_text(json.dumps({k: v for k, v in evaluation.items() if k != "model_sha256"}))
    with pytest.raises(EvaluationMismatchError, match="does not record the weights it measured"):
        export_folder(other, tmp_path / "out", "someone/x")
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_local_export_without_repo_id_is_named_by_its_folder(run_folder, tmp_path):
    export_folder(run_folder, tmp_path / "hrvae-mine")
    card = (tmp_path / "hrvae-mine" / "README.md").read_text()
    assert front_matter(card)["model-index"][0]["name"] == "hrvae-mine"
    assert "your-name" not in card and str(tmp_path) not in card


def test_the_card_shows_no_path_of_the_training_machine(run_folder, tmp_path, monkeypatch):
    import os

    training = json.loads((run_folder / "train_results.json").read_text())
    home = os.path.expanduser("~")
    training["command"] = f"python examples/train.py --output_dir {home}/runs/x --dataset_name {os.getcwd()}/data/e2e"
    folder = tmp_path / "copy"
    import shutil

    shutil.copytree(run_folder, folder)
    (folder / "train_results.json").write_text(json.dumps(training))
    card = str(build_model_card(folder, "someone/x"))
    assert "--output_dir ~/runs/x --dataset_name data/e2e" in card and home + "/" not in card


def test_a_script_run_from_a_frozen_copy_is_recorded_by_a_path_that_exists(tmp_path, monkeypatch):
    from hf_hrvae.hub import portable
    from hf_hrvae.scripts import command_line

    monkeypatch.chdir(REPO_ROOT)
    assert command_line(["examples/train.py", "--output_dir", "a b"]) == "python examples/train.py --output_dir 'a b'"
    frozen = tmp_path / "src-abc" / "examples" / "train.py"  # a git worktree outside the checkout
    recorded = command_line([str(frozen), "--seed", "1"])
    assert recorded == f"python {frozen} --seed 1" and not recorded.startswith("python ..")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert portable(recorded) == "python ~/src-abc/examples/train.py --seed 1"  # not "../..~/src-abc/..."
