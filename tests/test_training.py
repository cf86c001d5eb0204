import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from conftest import REPO_ROOT
from hf_hrvae.errors import HardwareError
from hf_hrvae.scripts import CheckpointNotFoundError
from hf_hrvae.training import (
    STATE_FILE,
    NonFiniteLossError,
    Trainer,
    TrainingArguments,
    find_checkpoint,
    train,
    upgrade_state,
)
from hf_hrvae.training import utils as training_utils
from hf_hrvae.training.utils import check_mixed_precision, cpu_runs_bf16_lstm

NO_BF16_LSTM = "this CPU's oneDNN has no bf16 LSTM (no AVX512-BF16 / AMX)"


def tiny_args(data, output_dir, **overrides):
    values = dict(
        dataset_name=data, output_dir=str(output_dir), max_train_samples=96, max_eval_samples=40,
        per_device_train_batch_size=16, per_device_eval_batch_size=16, embedding_size=16, hidden_size=16,
        num_train_epochs=1, seed=3, learning_rate=1e-3,
    )
    values.update(overrides)
    return TrainingArguments(**values)


def final_weights(trainer):
    return {k: v.clone() for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}


def run_example(*flags, launcher=(), script=REPO_ROOT / "examples" / "train.py", env=None):
    command = [*map(str, launcher), str(script), *map(str, flags)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-4000:]
    return result


TINY_FLAGS = ["--max_train_samples", 96, "--max_eval_samples", 40, "--per_device_train_batch_size", 16,
              "--per_device_eval_batch_size", 16, "--embedding_size", 16, "--hidden_size", 16, "--seed", 3]


def test_example_script_short_run_exports_a_loadable_model(e2e_folder, tmp_path):
    out = tmp_path / "run"
    run_example("--dataset_name", e2e_folder, "--output_dir", out, "--num_train_epochs", 2, "--setting", "inputless",
                *TINY_FLAGS, launcher=[sys.executable])
    saved = json.loads((out / "train_results.json").read_text())
    assert saved["completed_steps"] == 12 and saved["epochs"] == 2  # 96 sentences / 16 per batch, 2 epochs
    assert saved["num_processes"] == 1
    assert saved["arguments"]["setting"] == "inputless" and saved["arguments"]["dataset_name"] == e2e_folder
    assert len(saved["validations"]) == 2 and saved["best_validation"]["num_sentences"] == 40
    best = saved["best_validation"]
    assert best["elbo_nll"] == pytest.approx(best["reconstruction"] + best["kl"])
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [entry for entry in log if entry["kind"] == "train_step"]
    assert [entry["step"] for entry in steps] == list(range(1, 13))
    assert all(entry["kl_holistic"] > 0 and entry["reconstruction"] > 0 for entry in steps)
    assert (out / "training_curves.png").stat().st_size > 1000

    model = AutoModel.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.setting == "inputless" and model.config.vocab_size == len(tokenizer)
    batch = tokenizer(["blue spice is a coffee shop ."], return_tensors="pt")
    ids = model.generate(**batch, max_new_tokens=8)
    assert ids.shape[0] == 1 and ids[0, 0] == tokenizer.bos_token_id


@pytest.mark.parametrize(
    "options",
    [{}, {"group_by_length": True}, {"batch_order": "sorted"},
     {"preset": "vae-lstm-base", "kl_annealing": "linear", "kl_anneal_steps": 10},
     {"lr_scheduler_type": "cosine", "num_warmup_steps": 3}],
    ids=["shuffled", "grouped", "sorted", "annealed", "cosine"],
)
def test_kill_and_resume_gives_the_same_weights(e2e_folder, tmp_path, options):
    common = dict(max_train_steps=14, **options)  # 6 steps/epoch: the resume crosses an epoch boundary
    reference = Trainer(tiny_args(e2e_folder, tmp_path / "reference", **common))
    reference.run()
    expected = final_weights(reference)

    class Killed(Exception):
        pass

    def kill_at_step_5(trainer, batch):
        if trainer.state["completed_steps"] == 5:
            raise Killed  # the process dies here: after the checkpoint of step 4, before step 6's

    interrupted = tmp_path / "interrupted"
    with pytest.raises(Killed):
        Trainer(tiny_args(e2e_folder, interrupted, checkpointing_steps="2", **common), [kill_at_step_5]).run()
    assert sorted(p.name for p in (interrupted / "checkpoints").iterdir()) == ["step_2", "step_4"]

    resumed = Trainer(tiny_args(e2e_folder, interrupted, resume_from_checkpoint="latest", **common))
    results = resumed.run()
    assert results["completed_steps"] == 14
    for name, tensor in final_weights(resumed).items():
        torch.testing.assert_close(tensor, expected[name], atol=1e-6, rtol=0, msg=name)
    log = [json.loads(line) for line in (interrupted / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if e["kind"] == "train_step"] == list(range(1, 15))  # no step logged twice
    reference_log = (tmp_path / "reference" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["kind"] for line in reference_log] == [e["kind"] for e in log]


def test_lr_schedule_follows_get_scheduler_and_is_recorded(e2e_folder, tmp_path):
    from transformers import get_scheduler

    args = tiny_args(e2e_folder, tmp_path / "run", max_train_steps=10, lr_scheduler_type="linear", num_warmup_steps=2)
    results = train(args)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    logged = [entry["lr"] for entry in log if entry["kind"] == "train_step"]
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=2, num_training_steps=10)
    expected = []
    for _ in range(10):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert logged == pytest.approx(expected) and logged[0] == 0 and logged[2] == pytest.approx(1e-3)
    schedule = {"type": "linear", "learning_rate": 1e-3, "num_warmup_steps": 2, "num_training_steps": 10}
    assert results["lr_schedule"] == schedule and results["invocations"][0]["lr_schedule"] == schedule
    assert results["initialised_from"] is None


def test_model_name_or_path_starts_from_the_folders_weights_with_a_fresh_optimizer(e2e_folder, tmp_path):
    first = tiny_args(e2e_folder, tmp_path / "first", setting="inputless")
    train(first)
    saved = AutoModel.from_pretrained(tmp_path / "first")
    warm = Trainer(tiny_args(e2e_folder, tmp_path / "warm", model_name_or_path=str(tmp_path / "first"),
                             embedding_size=None, hidden_size=None, max_train_steps=1, learning_rate=0.0))
    results = warm.run()  # lr 0: the weights stay those of the folder
    for name, tensor in final_weights(warm).items():
        torch.testing.assert_close(tensor, saved.state_dict()[name], msg=name)
    assert warm.model.config.setting == "inputless" and warm.model.config.hidden_size == 16
    assert warm.optimizer.state_dict()["state"][0]["step"] == 1  # a fresh Adam: one step of its own
    assert results["initialised_from"] == str(tmp_path / "first")
    assert results["invocations"][0]["model_name_or_path"] == str(tmp_path / "first")
    assert AutoTokenizer.from_pretrained(tmp_path / "warm").get_vocab() == \
        AutoTokenizer.from_pretrained(tmp_path / "first").get_vocab()
    with pytest.raises(ValueError, match=r"leave out --embedding_size\.$"):  # --hidden_size widens (test_widening)
        tiny_args(e2e_folder, tmp_path / "x", model_name_or_path=str(tmp_path / "first"))


def test_non_finite_loss_stops_with_step_and_checkpoint(e2e_folder, tmp_path):
    def poison(trainer, batch):
        if trainer.state["completed_steps"] == 3:
            with torch.no_grad():
                trainer.accelerator.unwrap_model(trainer.model).decoder.output_projection.bias.fill_(float("nan"))

    with pytest.raises(NonFiniteLossError, match=r"at step 4, epoch 1; last good checkpoint: .*step_2"):
        Trainer(tiny_args(e2e_folder, tmp_path / "nan", checkpointing_steps="2"), [poison]).run()


def test_checkpoints_total_limit_keeps_the_newest(e2e_folder, tmp_path):
    out = tmp_path / "limited"
    train(tiny_args(e2e_folder, out, checkpointing_steps="1", checkpoints_total_limit=2))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_5", "step_6"]


# Scripted validations where the four metrics disagree: each picks another epoch (lower is better).
SCRIPTED = {1: dict(elbo_nll=10, iw_nll=12, paper_nll=9, reconstruction=9),
            2: dict(elbo_nll=11, iw_nll=11, paper_nll=10, reconstruction=8),
            3: dict(elbo_nll=12, iw_nll=13, paper_nll=8, reconstruction=10),
            4: dict(elbo_nll=13, iw_nll=14, paper_nll=11, reconstruction=7)}
PICKED = {"elbo_nll": 1, "iw_nll": 2, "paper_nll": 3, "reconstruction": 4}


def scripted_evaluate(weights_by_epoch):
    def evaluate(trainer, full=True):
        epoch = trainer.state["epoch"] + 1
        weights_by_epoch[epoch] = final_weights(trainer)
        return dict(SCRIPTED[epoch])
    return evaluate


@pytest.mark.parametrize("metric", list(PICKED))
def test_metric_for_best_model_exports_the_epoch_it_picks(e2e_folder, tmp_path, monkeypatch, metric):
    weights = {}
    monkeypatch.setattr(Trainer, "evaluate", scripted_evaluate(weights))
    out = tmp_path / metric
    results = train(tiny_args(e2e_folder, out, num_train_epochs=4, metric_for_best_model=metric))
    assert results["metric_for_best_model"] == metric and results["best_epoch"] == PICKED[metric]
    assert results["best_metric"] == SCRIPTED[PICKED[metric]][metric]
    assert results["best_validation"]["epoch"] == PICKED[metric]
    assert [v["epoch"] for v in results["validations"]] == [1, 2, 3, 4]  # epochs counted from 1
    saved = json.loads((out / "train_results.json").read_text())
    assert saved["metric_for_best_model"] == metric and saved["best_epoch"] == PICKED[metric]
    exported = AutoModel.from_pretrained(out).state_dict()
    for name, tensor in weights[PICKED[metric]].items():
        torch.testing.assert_close(exported[name], tensor, atol=0, rtol=0, msg=name)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert sorted({e["epoch"] for e in log}) == [1, 2, 3, 4]


def test_early_stopping_follows_the_metric_for_best_model(e2e_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(Trainer, "evaluate", scripted_evaluate({}))
    by_iw = train(tiny_args(e2e_folder, tmp_path / "iw", num_train_epochs=4, metric_for_best_model="iw_nll",
                            early_stopping_patience=1))
    assert by_iw["epochs"] == 3 and by_iw["best_epoch"] == 2  # epoch 3 is no better: stop
    by_elbo = train(tiny_args(e2e_folder, tmp_path / "elbo", num_train_epochs=4, early_stopping_patience=1))
    assert by_elbo["epochs"] == 2 and by_elbo["best_epoch"] == 1


def test_validation_records_every_metric_it_computes(e2e_folder, tmp_path):
    results = train(tiny_args(e2e_folder, tmp_path / "iw", metric_for_best_model="iw_nll", eval_iw_samples=3,
                              max_eval_samples=8))
    validation = results["validations"][0]
    assert validation["iw_samples"] == 3 and validation["iw_nll"] <= validation["elbo_nll"] + 1.0
    assert validation["paper_nll"] > 0 and validation["paper_kl"] == pytest.approx(validation["kl_holistic"])
    for key in ("elbo_nll", "reconstruction", "kl", "mutual_info", "active_units", "paper_ppl", "ppl"):
        assert key in validation
    assert results["best_metric"] == validation["iw_nll"]
    plain = train(tiny_args(e2e_folder, tmp_path / "plain", max_eval_samples=8))["validations"][0]
    assert "iw_nll" not in plain and "paper_nll" in plain  # IW-NLL only when asked for (it costs k decodes)
    assert plain["generation_sentences"] == 8 and plain["prior_samples"] == 100 and plain["validation_seconds"] > 0
    for key in ("generation_bleu", "generation_repeat_rate", "generation_reference_repeat_rate",
                "prior_greedy_repeat_rate", "prior_top_p_repeat_rate", "prior_greedy_distinct_2"):
        assert key in plain


def test_validations_generated_text_does_not_change_training(e2e_folder, tmp_path):
    weights = []
    for samples in (0, 8):
        trainer = Trainer(tiny_args(e2e_folder, tmp_path / str(samples), num_train_epochs=2,
                                    eval_generation_samples=samples))
        trainer.run()
        weights.append(final_weights(trainer))
    for name, tensor in weights[0].items():
        torch.testing.assert_close(weights[1][name], tensor, atol=0, rtol=0, msg=name)


def test_iw_nll_every_n_epochs_and_at_the_last(e2e_folder, tmp_path):
    results = train(tiny_args(e2e_folder, tmp_path / "run", num_train_epochs=5, eval_iw_samples=2,
                              eval_full_every_epochs=2, max_eval_samples=8, eval_generation_samples=0))
    assert ["iw_nll" in v for v in results["validations"]] == [False, True, False, True, True]
    assert ["mutual_info" in v for v in results["validations"]] == [False, True, False, True, True]
    assert all("active_units" in v and "paper_nll" in v for v in results["validations"])
    assert "generation_bleu" not in results["validations"][0]
    with pytest.raises(ValueError, match="leave --eval_full_every_epochs at 1"):
        TrainingArguments(dataset_name="e2e", output_dir="x", metric_for_best_model="iw_nll", eval_full_every_epochs=3)


def test_sorted_batch_order_trains_on_consecutive_slices_of_the_sorted_corpus(e2e_folder, tmp_path):
    seen = []
    trainer = Trainer(tiny_args(e2e_folder, tmp_path / "sorted", batch_order="sorted", num_train_epochs=2),
                      [lambda trainer, batch: seen.append(batch["index"].tolist())])
    trainer.run()
    lengths = trainer.data["train"]["length"]
    expected = sorted(range(len(lengths)), key=lengths.__getitem__)
    assert [i for batch in seen[:6] for i in batch] == expected and seen[6:] == seen[:6]
    with pytest.raises(ValueError, match="leave out --group_by_length"):
        TrainingArguments(dataset_name="e2e", output_dir="x", batch_order="sorted", group_by_length=True)


def test_bad_metric_flags_are_refused():
    with pytest.raises(ValueError, match="--metric_for_best_model must be one of"):
        TrainingArguments(dataset_name="e2e", output_dir="x", metric_for_best_model="bleu")
    with pytest.raises(ValueError, match="iw_nll needs --eval_iw_samples >= 1"):
        TrainingArguments(dataset_name="e2e", output_dir="x", metric_for_best_model="iw_nll", eval_iw_samples=0)
    assert TrainingArguments(dataset_name="e2e", output_dir="x", metric_for_best_model="iw_nll").eval_iw_samples == 10
    assert TrainingArguments(dataset_name="e2e", output_dir="x").eval_iw_samples == 0


def make_checkpoints(output_dir, steps):
    for step in steps:
        folder = output_dir / "checkpoints" / f"step_{step}"
        folder.mkdir(parents=True)
        (folder / STATE_FILE).write_text("{}")
    (output_dir / "checkpoints" / "step_99.partial").mkdir()  # a checkpoint being written: never chosen


def test_resume_accepts_the_folders_a_user_sees(tmp_path):
    out = tmp_path / "run"
    make_checkpoints(out, [6, 12, 30])
    newest = out / "checkpoints" / "step_30"
    assert find_checkpoint(out, "latest") == newest
    assert find_checkpoint("elsewhere", str(out)) == newest  # the run's output folder
    assert find_checkpoint("elsewhere", str(out / "checkpoints")) == newest  # the folder of checkpoints
    assert find_checkpoint("elsewhere", str(out / "checkpoints" / "step_12")) == out / "checkpoints" / "step_12"


def test_resume_from_a_folder_without_checkpoints_says_what_it_found(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    with pytest.raises(CheckpointNotFoundError, match=r"it holds: config.json\. Accepted: 'latest'.*step_N.*"):
        find_checkpoint(tmp_path / "run", str(tmp_path / "run"))
    with pytest.raises(CheckpointNotFoundError, match="no such folder"):
        find_checkpoint(tmp_path, str(tmp_path / "missing"))
    with pytest.raises(CheckpointNotFoundError, match="latest: no checkpoint"):
        find_checkpoint(tmp_path / "run", "latest")


def test_resuming_a_checkpoint_of_the_earlier_layout(e2e_folder, tmp_path, caplog):
    """Checkpoints written before --metric_for_best_model counted epochs from 0 and kept `best_nll`."""
    out = tmp_path / "old"
    train(tiny_args(e2e_folder, out, checkpointing_steps="epoch"))
    state_file = out / "checkpoints" / "step_6" / STATE_FILE
    state = json.loads(state_file.read_text())
    old = {k: v for k, v in state.items() if k not in ("epochs_counted_from", "metric_for_best_model", "best_metric")}
    old.update(best_nll=state["best_metric"], best_epoch=0, validations=[{**state["validations"][0], "epoch": 0}])
    del old["invocations"]  # recorded from a later version on
    state_file.write_text(json.dumps(old))
    log = out / "train_log.jsonl"
    log.write_text("".join(json.dumps({**json.loads(line), "epoch": json.loads(line)["epoch"] - 1}) + "\n"
                           for line in log.read_text().splitlines()))
    assert upgrade_state(old) == {**{k: v for k, v in state.items() if k != "invocations"}, "best_epoch": 1}
    with caplog.at_level("WARNING"):
        results = train(tiny_args(e2e_folder, out, num_train_epochs=2, resume_from_checkpoint=str(out),
                                  metric_for_best_model="reconstruction"))
    assert "chose its best epoch by elbo_nll; this run chooses by reconstruction" in caplog.text
    assert [v["epoch"] for v in results["validations"]] == [1, 2]
    assert results["best_epoch"] == 2  # epoch 1 had no reconstruction-chosen export: not a candidate
    assert results["metric_for_best_model"] == "reconstruction"
    unrecorded, resumed = results["invocations"]  # the checkpoint's own training is listed, without a command
    assert unrecorded["command"] is None and "predates" in unrecorded["note"]
    assert (unrecorded["from_step"], unrecorded["to_step"], unrecorded["to_epoch"]) == (0, 6, 1)
    assert resumed["from_step"] == 6 and resumed["to_epoch"] == 2 and "note" not in resumed
    assert sorted({json.loads(line)["epoch"] for line in log.read_text().splitlines()}) == [1, 2]


def test_scripts_end_user_errors_with_a_message_not_a_traceback(tmp_path):
    script = REPO_ROOT / "examples" / "train.py"
    offline = subprocess.run([sys.executable, script, "--dataset_name", "e2e", "--output_dir", tmp_path / "x"],
                             capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1",
                                                                             "HF_DATASETS_OFFLINE": "1"})
    assert offline.returncode == 1 and "Traceback" not in offline.stderr
    assert "error: Could not load the dataset" in offline.stderr and "../shared/data/e2e_nlg" in offline.stderr
    bad = subprocess.run([sys.executable, script, "--dataset_name", "e2e", "--output_dir", tmp_path / "x",
                          "--metric_for_best_model", "iw_nll", "--eval_iw_samples", "0"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "needs --eval_iw_samples" in bad.stderr


def test_bad_flags_are_refused():
    with pytest.raises(ValueError, match="--checkpointing_steps must be 'epoch' or a positive integer"):
        TrainingArguments(dataset_name="e2e", output_dir="x", checkpointing_steps="often")
    with pytest.raises(ValueError, match="--per_device_train_batch_size must be >= 1"):
        TrainingArguments(dataset_name="e2e", output_dir="x", per_device_train_batch_size=0)


TWO_PROCESS_DRIVER = textwrap.dedent(
    """
    import json, sys
    from transformers import HfArgumentParser
    from hf_hrvae.training import Trainer, TrainingArguments

    (args,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses()
    seen = []
    def record(trainer, batch):
        seen.append({"epoch": trainer.state["epoch"], "index": batch["index"].tolist()})
    trainer = Trainer(args, [record])
    results = trainer.run()
    rank = trainer.accelerator.process_index
    with open(f"{args.output_dir}/seen_{rank}.json", "w") as handle:
        json.dump({"seen": seen, "distributed_type": results["distributed_type"]}, handle)
    """
)


def test_two_cpu_processes_split_the_data_and_agree_with_one(e2e_folder, tmp_path):
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    from hf_hrvae.training.data import load_text_splits, tokenize_splits
    from hf_hrvae.evaluation import evaluate_elbo

    out = tmp_path / "ddp"
    driver = tmp_path / "driver.py"
    driver.write_text(TWO_PROCESS_DRIVER)
    # 96 sentences, 2 ranks x 16: 3 batches per rank and epoch, nothing repeated to even them out
    run_example("--dataset_name", e2e_folder, "--output_dir", out, "--num_train_epochs", 2, *TINY_FLAGS,
                launcher=[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", 2],
                script=driver, env={"ACCELERATE_USE_CPU": "true"})
    results = json.loads((out / "train_results.json").read_text())
    assert results["num_processes"] == 2 and results["distributed_type"] == "DistributedType.MULTI_CPU"
    assert results["completed_steps"] == 6
    ranks = [json.loads((out / f"seen_{rank}.json").read_text())["seen"] for rank in (0, 1)]
    for epoch in (0, 1):
        shards = [{i for step in seen if step["epoch"] == epoch for i in step["index"]} for seen in ranks]
        assert not shards[0] & shards[1]
        assert shards[0] | shards[1] == set(range(96))

    model = AutoModel.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    validation = tokenize_splits(load_text_splits(e2e_folder, max_eval_samples=40), tokenizer)["validation"]
    loader = DataLoader(validation.remove_columns("length"), batch_size=7, collate_fn=DataCollatorWithPadding(tokenizer))
    single = evaluate_elbo(model, loader, Accelerator(cpu=True), seed=3)
    best = results["best_validation"]
    assert single["num_sentences"] == best["num_sentences"] == 40
    for name in ("reconstruction", "kl", "kl_holistic", "elbo_nll", "elbo_ppl"):
        assert single[name] == pytest.approx(best[name], rel=1e-5), name


@pytest.mark.skipif(not cpu_runs_bf16_lstm(), reason=NO_BF16_LSTM)
def test_bf16_autocast_trains_with_a_loss_within_one_percent_of_fp32(e2e_folder, tmp_path):
    losses = {}
    for precision in ("no", "bf16"):  # in subprocesses: accelerate's state cannot change precision in one process
        out = tmp_path / precision
        run_example("--dataset_name", e2e_folder, "--output_dir", out, "--max_train_steps", 3, "--mixed_precision",
                    precision, *TINY_FLAGS, launcher=[sys.executable])
        log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
        losses[precision] = [entry["loss"] for entry in log if entry["kind"] == "train_step"]
        assert json.loads((out / "train_results.json").read_text())["arguments"]["mixed_precision"] == precision
    for fp32, bf16 in zip(losses["no"], losses["bf16"]):
        assert bf16 == pytest.approx(fp32, rel=0.01)
    assert losses["no"] != losses["bf16"]  # autocast did run


def test_bf16_on_a_cpu_without_a_bf16_lstm_is_refused_before_training(monkeypatch):
    monkeypatch.setattr(training_utils, "cpu_runs_bf16_lstm", lambda: False)
    with pytest.raises(HardwareError, match="--mixed_precision no"):
        check_mixed_precision("bf16", torch.device("cpu"))
    check_mixed_precision("no", torch.device("cpu"))
    check_mixed_precision(None, torch.device("cpu"))
    check_mixed_precision("bf16", torch.device("cuda"))  # CUDA's bf16 LSTM is cuDNN's, not oneDNN's
    monkeypatch.setattr(training_utils, "cpu_runs_bf16_lstm", lambda: True)
    check_mixed_precision("bf16", torch.device("cpu"))


@pytest.mark.skipif(cpu_runs_bf16_lstm(), reason="this CPU runs bf16 LSTMs (the bf16 training test covers it)")
def test_train_script_with_bf16_on_such_a_cpu_ends_with_the_message_not_onednns(e2e_folder, tmp_path):
    result = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / "train.py"), "--dataset_name", e2e_folder,
                             "--output_dir", str(tmp_path / "run"), "--mixed_precision", "bf16", *map(str, TINY_FLAGS)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: --mixed_precision bf16 needs a CPU")
    assert "primitive descriptor" not in result.stderr and not (tmp_path / "run" / "train_results.json").exists()


def test_time_budget_stops_between_epochs_and_records_how_many_ran(e2e_folder, tmp_path):
    # 96 sentences / 16 per batch = 6 steps per epoch; a budget of 6 ms ends after the first epoch
    short = train(tiny_args(e2e_folder, tmp_path / "short", num_train_epochs=5, max_train_minutes=1e-4))
    assert short["epochs"] == 1 and short["completed_steps"] == 6 and len(short["validations"]) == 1
    roomy = train(tiny_args(e2e_folder, tmp_path / "roomy", num_train_epochs=2, max_train_minutes=60))
    assert roomy["epochs"] == 2 and roomy["completed_steps"] == 12
    with pytest.raises(ValueError, match="--max_train_minutes must be > 0"):
        tiny_args(e2e_folder, tmp_path / "bad", max_train_minutes=0)


def test_a_checkpoint_exports_as_the_model_of_its_epoch(e2e_folder, tmp_path):
    from hf_hrvae.training.checkpoints import export_checkpoint
    from hf_hrvae.hub import build_model_card

    out = tmp_path / "run"
    weights = {}
    trainer = Trainer(tiny_args(e2e_folder, out, num_train_epochs=2, checkpointing_steps="epoch"),
                      [lambda t, b: weights.__setitem__(t.state["completed_steps"], final_weights(t))])
    results = trainer.run()
    target = tmp_path / "epoch1"
    exported = export_checkpoint(out, out / "checkpoints" / "step_6", target, reason="the first epoch, by hand")
    assert exported["best_epoch"] == 1 and exported["run_best_epoch"] == results["best_epoch"]
    assert exported["best_validation"] == results["validations"][0]
    model = AutoModel.from_pretrained(target)
    for name, tensor in weights[6].items():
        torch.testing.assert_close(model.state_dict()[name], tensor, atol=0, rtol=0, msg=name)
    assert AutoTokenizer.from_pretrained(target).get_vocab() == AutoTokenizer.from_pretrained(out).get_vocab()
    card = str(build_model_card(target, "someone/x"))
    assert "epoch 1 of 2, exported from its checkpoint: the first epoch, by hand" in card
    with pytest.raises(CheckpointNotFoundError, match="inside an epoch"):
        state = json.loads((out / "checkpoints" / "step_6" / STATE_FILE).read_text())
        (out / "checkpoints" / "step_6" / STATE_FILE).write_text(json.dumps({**state, "batch_in_epoch": 3}))
        export_checkpoint(out, out / "checkpoints" / "step_6", tmp_path / "bad", reason="x")


def test_a_checkpoint_exports_in_bfloat16_and_loads_as_float32(e2e_folder, tmp_path):
    from safetensors import safe_open

    from hf_hrvae.hub import build_model_card
    from hf_hrvae.training.checkpoints import export_checkpoint

    out = tmp_path / "run"
    Trainer(tiny_args(e2e_folder, out, num_train_epochs=1, checkpointing_steps="epoch")).run()
    full, half = tmp_path / "fp32", tmp_path / "bf16"
    export_checkpoint(out, out / "checkpoints" / "step_6", full, reason="fp32")
    results = export_checkpoint(out, out / "checkpoints" / "step_6", half, reason="bf16", dtype="bfloat16")
    assert results["weights_dtype"] == "bfloat16"
    with safe_open(half / "model.safetensors", "pt") as stored:
        assert {stored.get_tensor(name).dtype for name in stored.keys()} == {torch.bfloat16}
    size = lambda folder: (folder / "model.safetensors").stat().st_size
    assert size(half) < 0.55 * size(full)
    reference, model = AutoModel.from_pretrained(full), AutoModel.from_pretrained(half)
    assert model.dtype == torch.float32  # by default, whatever the stored dtype
    for name, tensor in reference.state_dict().items():
        if tensor.is_floating_point():
            torch.testing.assert_close(model.state_dict()[name], tensor.to(torch.bfloat16).float(), atol=0, rtol=0)
    assert AutoModel.from_pretrained(half, dtype="auto").dtype == torch.bfloat16
    batch = AutoTokenizer.from_pretrained(half)(["the eagle is a pub ."], return_tensors="pt")
    assert model.generate(**batch, max_new_tokens=8).shape[0] == 1  # generates in float32 as it stands
    assert "stored in bfloat16" in str(build_model_card(half))
    assert "stored in" not in str(build_model_card(full))
    with pytest.raises(ValueError, match="--dtype 'float16'"):
        export_checkpoint(out, out / "checkpoints" / "step_6", tmp_path / "x", reason="x", dtype="float16")
