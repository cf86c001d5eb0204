import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from hf_hrvae.paper.results import (
    EQUAL_BUDGET_RUNS,
    PAPER_TABLE2,
    SHIPPED_RUNS,
    RunSpec,
    build_record,
    downsample_curve,
    equal_budget_curves_markdown,
    equal_budget_markdown,
    fill_documents,
    fill_markers,
    latent_return_epoch,
    load_records,
    merge_curve,
    plot_figure2,
    long_run_markdown,
    results_sections,
    runs_markdown,
    sample_indices,
    system_label,
    table2_markdown,
)
from hf_hrvae.training.data import load_text_splits


@pytest.mark.parametrize("name, expected", [
    ("e2e-hrvae-inputless", RunSpec("e2e", "hrvae", "inputless")),
    ("ptb-vae-lstm-base-standard", RunSpec("ptb", "vae-lstm-base", "standard")),
    ("e2e-vmf-vae-inputless-word2vec", RunSpec("e2e", "vmf-vae", "inputless", "word2vec")),
    ("e2e-vae-cnn-standard-lr1e-3", RunSpec("e2e", "vae-cnn", "standard", "lr1e-3")),
])
def test_run_names_parse_and_round_trip(name, expected):
    assert RunSpec.parse(name) == expected and expected.name == name


@pytest.mark.parametrize("name, message", [
    ("e2e-hrvae", "Cannot parse run name"),
    ("wiki-hrvae-standard", "Cannot parse run name"),
    ("e2e-hrvae-standard-bigger", "Unknown variant 'bigger'"),
])
def test_bad_run_names_say_what_is_expected(name, message):
    with pytest.raises(ValueError, match=message):
        RunSpec.parse(name)


def test_run_commands_carry_the_preset_setting_and_variant_flags():
    spec = RunSpec.parse("e2e-hrvae-inputless-word2vec")
    args = spec.training_args("../shared/data", "runs/x", ["--max_train_minutes", "5"])
    assert args[:2] == ["--dataset_name", "../shared/data/e2e_nlg"]
    assert args[args.index("--preset") + 1] == "hrvae" and args[args.index("--setting") + 1] == "inputless"
    assert args[args.index("--init_embeddings") + 1] == "word2vec" and args[-2:] == ["--max_train_minutes", "5"]
    evaluation = RunSpec.parse("ptb-vae-cnn-standard").evaluation_args("d", "runs/y", "runs/y/e.json", 100)
    assert evaluation[evaluation.index("--iw_samples") + 1] == "100"
    assert evaluation[evaluation.index("--dataset_name") + 1] == "d/ptb_text_only"


def test_downsampled_curve_holds_window_means():
    entries = [{"step": s, "reconstruction": float(s), "kl_holistic": 1.0, "kl_last": 2.0 * s} for s in range(1, 11)]
    curve = downsample_curve(entries, points=3)  # windows of 4, 4, 2 steps
    assert curve["window"] == 4 and curve["step"] == [4, 8, 10]
    assert curve["reconstruction"] == [2.5, 6.5, 9.5] and curve["kl_last"] == [5.0, 13.0, 19.0]
    merged = merge_curve(curve, min_steps=8)  # two points per merged one; the short last one is dropped
    assert merged["step"] == [8] and merged["reconstruction"] == [4.5] and merged["window"] == 8
    assert downsample_curve([])["step"] == []


def test_sample_indices_are_evenly_spaced_and_fixed():
    assert sample_indices(4693) == [0, 938, 1877, 2815, 3754]


def fake_record(dataset, preset, setting, nll):
    train_results = {"command": "python examples/train.py ...", "epochs": 3, "best_epoch": 2, "completed_steps": 30,
                     "wall_time_s": 60.0, "metric_for_best_model": "iw_nll",
                     "validations": [{"epoch": 1, "step": 10, "elbo_nll": nll + 1, "kl": 1.0, "reconstruction": nll,
                                      "kl_holistic": 0.5, "iw_nll": nll + 0.5, "iw_samples": 10, "paper_nll": nll - 1,
                                      "num_tokens": 99, "train_seconds": 20.0}]}
    eval_results = {"command": "python examples/evaluate.py ...", "wall_time_s": 12.5, "split": "test",
                    "num_sentences": 10, "num_tokens": 200, "arguments": {"iw_samples": 500},
                    "valid": {"elbo_nll": nll + 2, "iw_nll": nll + 1, "iw_samples": 500, "kl": 3.25, "ppl": 9.5,
                              "mutual_info": 1.5, "active_units": 7, "bleu": 12.0},
                    "paper_protocol": {"label": "comparison only, not a bound", "nll": nll, "kl": 0.5, "ppl": 8.0}}
    steps = [{"step": s, "reconstruction": 100.0 - s, "kl_holistic": 1.0, "kl_last": 2.0} for s in range(1, 301)]
    samples = {"reconstructions": [{"index": i, "input": f"in {i}", "posterior_mean": f"{preset} {i}",
                                    "posterior_sample": "s"} for i in range(5)],
               "prior_samples": ["p"] * 5, "interpolation": {"from": "a", "to": "b", "decodes": ["a", "m", "b"]}}
    return build_record(RunSpec(dataset, preset, setting), train_results, eval_results, steps, samples,
                        device="test device")


def test_record_holds_the_evaluation_layout_and_the_provenance():
    record = fake_record("e2e", "hrvae", "inputless", 50.0)
    assert record["name"] == "e2e-hrvae-inputless" and record["device"] == "test device"
    trained = {k: record[k] for k in ("command", "epochs", "best_epoch", "completed_steps")} | {
        "wall_time_s": 1.0, "validations": [], "device": "CPU x, 1 threads (torch t)"}
    evaluated = {"command": "e", "wall_time_s": 1.0, "valid": record["valid"], "paper_protocol": None}
    assert build_record(RunSpec("e2e", "hrvae", "inputless"), trained, evaluated, [])["device"] == \
        "CPU x, 1 threads (torch t)"  # where it trained, not where the record was written
    import os

    home = os.path.expanduser("~")
    trained["command"] = f"python {home}/runs/src-abc/examples/train.py --output_dir {home}/runs/x"
    evaluated["command"] = f"python examples/evaluate.py --model_name_or_path {os.getcwd()}/out/x"
    scrubbed = build_record(RunSpec("e2e", "hrvae", "inputless"), trained, evaluated, [])
    assert scrubbed["command"] == "python ~/runs/src-abc/examples/train.py --output_dir ~/runs/x"  # no machine paths
    assert scrubbed["evaluation_command"] == "python examples/evaluate.py --model_name_or_path out/x"
    assert record["command"].startswith("python examples/train.py")
    assert record["evaluation_command"].startswith("python examples/evaluate.py")
    assert record["wall_time_s"] == 72.5 and record["epochs"] == 3
    assert record["valid"]["iw_nll"] == 51.0 and record["paper_protocol"]["nll"] == 50.0
    assert len(record["training_curve"]["step"]) == 300 and record["validation_curve"][0]["elbo_nll"] == 51.0
    assert record["validation_curve"][0]["iw_nll"] == 50.5 and record["validation_curve"][0]["paper_nll"] == 49.0
    assert "num_tokens" not in record["validation_curve"][0] and "active_units" not in record["validation_curve"][0]
    assert record["metric_for_best_model"] == "iw_nll" and record["best_epoch"] == 2
    assert "exported: epoch 2, the best by validation iw_nll" in runs_markdown([record])
    assert "Note:" not in runs_markdown([record])
    record["notes"] = ["ran with free_bits 0"]
    assert "Note: ran with free_bits 0\n" in runs_markdown([record])
    assert "; training 1.0 min," in runs_markdown([record])
    record["invocations"] = [{"command": "a"}, {"command": "b"}]  # resumed: the wall time is the last invocation's
    assert ("; 2 invocations: the epochs' training steps 0.3 min in all, the last invocation 1.0 min with its "
            "validations," in runs_markdown([record]))


def test_tables_put_the_papers_numbers_beside_ours():
    records = [fake_record("e2e", preset, "inputless", 40.0 + i) for i, preset in
               enumerate(["hrvae", "vae-lstm-base", "vae-cnn", "vmf-vae"])]
    table = table2_markdown(records, "e2e").splitlines()
    assert len(table) == 2 + 4
    assert table[2].startswith("| VAE-LSTM-base | inputless | 3 | 101 (5.48) | 34.7 | 41.00 (0.50) | 8.00 | 43.00 | "
                               "42.00 (500) | 3.25 | 9.50 | 1.500 | 7 | 12.0 |")
    assert table[-1].startswith("| HR-VAE | inputless | 3 | 38 (7.78) | 3.74 | 40.00 (0.50)")
    assert PAPER_TABLE2[("ptb", "vmf-vae", "standard")]["prior"]  # the paper's dagger
    ptb = table2_markdown([fake_record("ptb", "vae-lstm-base", "standard", 90.0)], "ptb")
    assert "| 101† (2†) | 119† |" in ptb


def test_document_sections_are_replaced_between_markers_only(tmp_path):
    records = [fake_record("e2e", preset, "inputless", 40.0) for preset in ["hrvae", "vae-cnn"]]
    text = "intro\n<!-- BEGIN TABLE_E2E -->\nold\n<!-- END TABLE_E2E -->\noutro\n"
    filled = fill_markers(text, {"TABLE_E2E": "new table\n"})
    assert filled == "intro\n<!-- BEGIN TABLE_E2E -->\nnew table\n<!-- END TABLE_E2E -->\noutro\n"
    assert fill_markers(filled, {"TABLE_E2E": "new table\n"}) == filled  # idempotent
    with pytest.raises(ValueError, match="no <!-- BEGIN SAMPLES -->"):
        fill_markers(text, {"SAMPLES": "x"})
    # two documents: each section goes where its markers are, and one without markers anywhere is an error
    short, long = text, "log\n<!-- BEGIN SAMPLES -->\n<!-- END SAMPLES -->\n"
    both = fill_documents({"short": short, "long": long}, {"TABLE_E2E": "t\n", "SAMPLES": "s\n"})
    assert both == {"short": short.replace("old", "t"), "long": long.replace("-->\n<", "-->\ns\n<")}
    with pytest.raises(ValueError, match="No document has the markers of RUNS"):
        fill_documents({"short": short, "long": long}, {"TABLE_E2E": "t\n", "RUNS": "r\n"})
    sections = results_sections(records, "figures/f.png")
    assert "1. input: *in 0*" in sections["SAMPLES"] and "   - HR-VAE: hrvae 0" in sections["SAMPLES"]
    assert "   - VAE-CNN: vae-cnn 0" in sections["SAMPLES"]
    png = plot_figure2(records, tmp_path / "fig.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="No ptb standard records"):
        plot_figure2(records, tmp_path / "none.png", dataset="ptb", setting="standard")


def equal_budget_record(preset, variant, kls, nll):
    record = fake_record("e2e", preset, "inputless", nll) | {"variant": variant,
                                                             "name": f"e2e-{preset}-inputless-{variant}"}
    record["validation_curve"] = [{"epoch": i + 1, "kl": kl} for i, kl in enumerate(kls)]
    return record


def test_latent_return_epoch_is_the_first_epoch_the_kl_and_active_units_stay_above_the_thresholds():
    record = equal_budget_record("hrvae", "long", [0.0, 6.0, 3.0, 5.0, 9.0], 40.0)
    assert latent_return_epoch(record) == 4  # epoch 2 crossed, but epoch 3 fell back
    assert latent_return_epoch(record, threshold=10.0) is None
    assert latent_return_epoch(equal_budget_record("vae-lstm-base", "long", [41.0, 50.0], 40.0)) == 1
    vmf = equal_budget_record("vmf-vae", "long", [17.86] * 4, 40.0)  # vMF's KL is a constant of kappa
    for v, units in zip(vmf["validation_curve"], [0, 0, 14, 25]):
        v["active_units"] = units
    assert latent_return_epoch(vmf) == 3
    assert latent_return_epoch(vmf, min_active_units=20) == 4


def test_equal_budget_table_lists_the_five_runs_in_report_order(tmp_path):
    records = [equal_budget_record("vae-lstm-base", "long", [41.0, 50.0], 41.0),
               equal_budget_record("hrvae", "long-last-beta", [0.1, 6.0], 42.0),
               equal_budget_record("hrvae", "long30", [0.0, 0.0], 40.0),
               equal_budget_record("hrvae", "long", [0.0], 40.0),  # the shipped run's record: not in the table
               fake_record("e2e", "vae-cnn", "inputless", 90.0),  # not one of the comparison's runs
               equal_budget_record("hrvae", "long-sum", [0.0, 0.0], 45.0)]
    assert system_label(records[1]) == "HR-VAE (β ≈ 1/n ablation)" and system_label(records[2]) == "HR-VAE"
    assert system_label(records[3]) == "HR-VAE"
    table = equal_budget_markdown(records).splitlines()
    assert len(table) == 2 + len(EQUAL_BUDGET_RUNS)
    assert table[2].startswith("| HR-VAE | 3 (2) | never | 38 (7.78) | 40.00 (0.50) | 8.00 | 42.00 | 41.00 (500) |")
    assert table[3].startswith("| HR-VAE (β ≈ 1/n ablation) | 3 (2) | 2 | – (–) | 42.00 (0.50) |")  # not in the paper
    assert table[4].startswith("| VAE-LSTM-base | 3 (2) | 1 | 101 (5.48) | 41.00 (0.50) |")
    assert table[5] == "| `e2e-vae-cnn-inputless-long` | no record yet |" + " |" * 10, table
    assert table[5].count("|") == table[4].count("|")
    assert table[7].startswith("| HR-VAE (KL summed over steps) | 3 (2) | never | – (–) | 45.00 (0.50) |")
    curves = equal_budget_curves_markdown(records).splitlines()
    assert curves[2] == ("| epoch | HR-VAE | HR-VAE (β ≈ 1/n ablation) | VAE-LSTM-base | "
                         "HR-VAE (KL summed over steps) |")
    assert curves[4:] == ["| 1 | 0.00 / – | 0.10 / – | 41.00 / – | 0.00 / – |",
                          "| 2 | 0.00 / – | 6.00 / – | 50.00 / – | 0.00 / – |"]
    assert equal_budget_curves_markdown([]).startswith("(no record")
    sections = results_sections(records, "f.png", "g.png")
    assert sections["TABLE_EQUAL_BUDGET"] == equal_budget_markdown(records)
    assert sections["CURVES_EQUAL_BUDGET"] == equal_budget_curves_markdown(records)
    assert "long-last-beta" not in sections["TABLE_E2E"] and "long30" not in sections["TABLE_E2E"]  # not twice
    assert "| HR-VAE (long) |" in sections["TABLE_E2E"] and "| VAE-CNN |" in sections["TABLE_E2E"]
    assert "](g.png)" in sections["FIGURE2_EQUAL_BUDGET"]
    assert results_sections(records, "f.png")["FIGURE2_EQUAL_BUDGET"].startswith("(no record")
    png = plot_figure2(records, tmp_path / "equal.png", names=EQUAL_BUDGET_RUNS)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="among"):
        plot_figure2(records[3:5], tmp_path / "none.png", names=EQUAL_BUDGET_RUNS)  # neither is in the comparison


def test_long_run_section_shows_the_validation_curve_and_the_samples():
    record = build_record(RunSpec("e2e", "hrvae", "inputless", "long"), {
        "command": "python examples/train.py ...", "epochs": 2, "best_epoch": 2, "completed_steps": 20,
        "wall_time_s": 60.0, "metric_for_best_model": "iw_nll",
        "validations": [{"epoch": 1, "step": 10, "elbo_nll": 110.0, "reconstruction": 109.99, "kl": 0.01,
                         "kl_holistic": 0.0, "iw_nll": 109.5, "iw_samples": 10, "paper_nll": 109.0,
                         "mutual_info": 0.0, "active_units": 0},
                        {"epoch": 2, "step": 20, "elbo_nll": 112.0, "reconstruction": 100.0, "kl": 12.0,
                         "kl_holistic": 0.4, "iw_nll": 108.25, "iw_samples": 10, "paper_nll": 99.0,
                         "mutual_info": 4.5, "active_units": 60}]},
        fake_record("e2e", "hrvae", "inputless", 1.0) | {"command": "python examples/evaluate.py ...",
                                                          "wall_time_s": 1.0},
        [], fake_record("e2e", "hrvae", "inputless", 1.0)["samples"], device="test device")
    assert record["name"] == "e2e-hrvae-inputless-long"
    text = long_run_markdown([record], "e2e-hrvae-inputless-long")
    assert "exported: epoch 2, by validation iw_nll" in text
    assert "| 1 | 0.01 | 0 | 0.00 | 109.99 | 110.00 | 109.50 (10) | 109.00 | – | – / – |" in text
    assert "| 2 **(exported)** | 12.00 | 60 | 4.50 | 100.00 | 112.00 | 108.25 (10) | 99.00 | – | – / – |" in text
    assert "1. input: *in 0*" in text and "   - mean: hrvae 0" in text
    assert results_sections([], "f.png")["LONG_RUN"].startswith(f"(no record {SHIPPED_RUNS['hrvae-e2e-inputless']}")
    shipped = results_sections([record | {"name": SHIPPED_RUNS["hrvae-e2e"], "setting": "standard"}], "f.png")
    assert "| [`hrvae-e2e`](../models/hrvae-e2e) | standard |" in shipped["SHIPPED"]
    assert f"(no record {SHIPPED_RUNS['hrvae-e2e-inputless']}.json yet)" in shipped["SHIPPED"]


def test_committed_records_have_the_issue_layout():
    records = load_records(REPO_ROOT / "results")
    names = {record["name"] for record in records}
    expected = {f"e2e-{p}-{s}" for p in ("hrvae", "vae-lstm-base", "vae-cnn", "vmf-vae") for s in ("standard", "inputless")}
    assert expected <= names and "e2e-hrvae-inputless-word2vec" in names
    for record in records:
        evaluation_layout = {"split", "num_sentences", "num_tokens", "valid", "paper_protocol", "wall_time_s",
                             "num_processes", "arguments"}
        assert evaluation_layout <= record.keys() and record["arguments"]["split"] == "test"
        assert record["split"] == "test" and record["command"] and record["evaluation_command"]
        assert record["epochs"] >= 1 and record["wall_time_s"] > 0 and record["device"]
        k = record["valid"]["iw_samples"]
        # the issue's k per system; some HR-VAE runs were evaluated with k = 100 for the session's time, as their
        # docs say: the optional long-sum run and the PTB models (a 10k vocabulary: 5x the cost per sample)
        reduced = record["variant"] == "long-sum" or (record["dataset"], record["preset"]) == ("ptb", "hrvae")
        assert k == 500 if record["preset"] == "hrvae" and not reduced else k in (100, 500)
        assert record["paper_protocol"]["label"] == "comparison only, not a bound"
        assert record["valid"]["elbo_nll"] >= record["valid"]["iw_nll"] - 0.5  # IW tightens the bound (noise)


def test_committed_equal_budget_records_share_the_budget_and_settings():
    """Issue 16: each run >= 30 epochs, all within 10 % of one number, the shipped run's training settings."""
    records = [r for r in load_records(REPO_ROOT / "results") if r["name"] in EQUAL_BUDGET_RUNS]
    if not records:
        pytest.skip("no equal-budget record committed yet")
    epochs = [r["epochs"] for r in records]
    assert min(epochs) >= 30 and max(epochs) <= 1.1 * min(epochs), epochs
    for r in records:
        flags = " ".join(i["command"] for i in r["invocations"]) if r.get("invocations") else r["command"]
        for flag in ("--setting inputless", "--learning_rate 1e-3", "--mixed_precision bf16", "--group_by_length",
                     "--metric_for_best_model paper_nll", "--eval_iw_samples 10"):
            assert flag in r["command"], (r["name"], flag)
        assert ("--kl_regularisation last_beta" in flags) == (r["variant"] == "long-last-beta"), r["name"]
        assert ("--kl_reduction sum" in flags) == (r["variant"] == "long-sum"), r["name"]
        assert r["metric_for_best_model"] == "paper_nll" and r["valid"]["iw_samples"] >= 100


def test_reproduce_trains_evaluates_and_records_a_run(e2e_folder, tmp_path):
    data_root = os.path.dirname(e2e_folder)
    command = [sys.executable, str(REPO_ROOT / "examples" / "paper" / "reproduce.py"), "--runs", "e2e-hrvae-inputless",
               "--data_root", data_root, "--work_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "res"),
               "--num_train_epochs", "1", "--iw_samples", "3",
               "--train_extra", "--max_train_samples 64 --max_eval_samples 16 --embedding_size 8 --hidden_size 8",
               "--eval_extra", "--max_samples 12"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((tmp_path / "res" / "e2e-hrvae-inputless.json").read_text())
    assert record["epochs"] == 1 and record["num_sentences"] == 12 and record["valid"]["iw_samples"] == 3
    assert "--preset hrvae --setting inputless" in record["command"]
    assert record["reproduce_command"].startswith("python examples/paper/reproduce.py --runs e2e-hrvae-inputless")
    assert len(record["samples"]["reconstructions"]) == 5 and len(record["samples"]["prior_samples"]) == 5

    # in this process (each script start costs the suite ~6 s): the scripts that the options start, with what
    spec = importlib.util.spec_from_file_location("reproduce", REPO_ROOT / "examples" / "paper" / "reproduce.py")
    reproduce = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reproduce)
    started = []
    reproduce.run_logged = lambda command, log_path, env: started.append(command)
    # --evaluate_only evaluates the trained run again (its own k) and records it, without training it again
    arguments = reproduce.ReproduceArguments(runs=["e2e-hrvae-inputless"], data_root=data_root, iw_samples=2,
                                             work_dir=str(tmp_path / "runs"), results_dir=str(tmp_path / "res"),
                                             evaluate_only=True)
    reproduce.run_one(reproduce.RunSpec.parse("e2e-hrvae-inputless"), arguments, {})
    assert [Path(command[1]).name for command in started] == ["evaluate.py", "reproduce.py"]
    evaluation = started[0]
    assert evaluation[evaluation.index("--iw_samples") + 1] == "2"
    assert evaluation[evaluation.index("--model_name_or_path") + 1] == str(tmp_path / "runs" / "e2e-hrvae-inputless")
    assert "--collect_only" in started[1]
    # a run trained on its own files (--train_file: no dataset in its arguments) is recorded with the sentences of
    # the split its evaluation read
    run_dir = tmp_path / "runs" / "e2e-hrvae-inputless"
    training = json.loads((run_dir / "train_results.json").read_text())
    training["arguments"]["dataset_name"] = None
    (run_dir / "train_results.json").write_text(json.dumps(training))
    path = reproduce.collect(reproduce.RunSpec.parse("e2e-hrvae-inputless"), arguments)
    test_texts = load_text_splits(e2e_folder)["test"]["text"]
    assert json.loads(path.read_text())["samples"]["reconstructions"][0]["input"] == test_texts[0]
    # a run never trained is refused
    arguments.runs = ["e2e-hrvae-standard"]
    with pytest.raises(FileNotFoundError, match="holds no finished training"):
        reproduce.run_one(reproduce.RunSpec.parse("e2e-hrvae-standard"), arguments, {})
    assert len(started) == 2


def test_tables_name_and_format_metrics_from_the_registry():
    from hf_hrvae.metrics import METRICS
    from hf_hrvae.paper.results import VALID_COLUMNS, metric_cell, metric_header

    shorts = {m.short for m in METRICS}
    assert all(metric_header(key).removesuffix(" (k)") in shorts for key in VALID_COLUMNS)
    valid = {"iw_nll": 41.0, "iw_samples": 500, "active_units": 7, "mutual_info": 1.23456, "bleu": 12.34,
             "reconstruction_repeat_rate": 0.125}
    assert metric_cell(valid, "iw_nll") == "41.00 (500)" and metric_cell(valid, "active_units") == "7"
    assert metric_cell(valid, "mutual_info") == "1.235" and metric_cell(valid, "bleu") == "12.3"
    assert metric_cell(valid, "reconstruction_repeat_rate") == "12 %" and metric_cell(valid, "elbo_nll") == "–"
    with pytest.raises(StopIteration):
        metric_cell(valid, "not_a_metric")  # a column must be a metric of the registry
    records = [json.loads(path.read_text()) for path in sorted((REPO_ROOT / "results").glob("*.json"))]
    header = table2_markdown(records, "e2e").splitlines()[0]
    assert header.endswith(" | ".join(metric_header(key) for key in VALID_COLUMNS) + " |")


def test_the_readme_models_table_is_the_records_of_the_shipped_runs():
    """The README's models table is generated (make_results.py) and matches the records it is made from."""
    import re

    from hf_hrvae.paper.results import SHIPPED_RUNS, SHIPPED_USES, models_markdown

    records = load_records(REPO_ROOT / "results")
    table = models_markdown(records)
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"<!-- BEGIN MODELS -->\n(.*?)<!-- END MODELS -->", readme, re.S).group(1)
    assert shown == table, "run examples/paper/make_results.py"
    by_name = {r["name"]: r for r in records}
    for folder, run in SHIPPED_RUNS.items():
        row = next(line for line in table.splitlines() if f"[`{folder}`]" in line)
        assert f"{by_name[run]['valid']['bleu']:.1f}" in row and SHIPPED_USES[folder] in row
        assert (REPO_ROOT / "models" / folder / "config.json").exists()
