"""The chain of warm starts behind a model: what its record, the models table and its card say about its epochs."""

import json

from hf_hrvae.paper.results import SHIPPED_RUNS, models_markdown, runs_markdown
from hf_hrvae.training.lineage import epochs_phrase, total_epochs, training_lineage


def _run(folder, epochs, initialised_from=None, command=None):
    folder.mkdir(parents=True)
    results = {"epochs": epochs, "initialised_from": initialised_from, "command": command or f"train {folder.name}"}
    (folder / "train_results.json").write_text(json.dumps(results))
    return results


def test_lineage_follows_the_warm_starts_back_to_the_run_from_scratch(tmp_path):
    _run(tmp_path / "models" / "shipped", 25)
    _run(tmp_path / "runs" / "middle", 11, initialised_from="models/shipped")  # relative: from the checkout
    last = {"epochs": 12, "initialised_from": str(tmp_path / "runs" / "middle")}
    lineage = training_lineage(last, base=tmp_path)
    assert [(step["folder"], step["epochs"]) for step in lineage] == [(str(tmp_path / "runs" / "middle"), 11),
                                                                      ("models/shipped", 25)]
    assert lineage[0]["command"] == "train middle"
    assert total_epochs(12, lineage) == 48
    assert training_lineage({"epochs": 3, "initialised_from": None}) == []


def test_a_missing_ancestor_makes_the_total_unknown_not_short(tmp_path):
    _run(tmp_path / "middle", 11, initialised_from=str(tmp_path / "gone"))
    lineage = training_lineage({"epochs": 12, "initialised_from": str(tmp_path / "middle")})
    assert lineage[-1] == {"folder": str(tmp_path / "gone"), "epochs": None, "command": None,
                           "initialised_from": None}
    assert total_epochs(12, lineage) is None
    record = {"epochs": 12, "initialised_from": "x", "lineage": lineage}
    assert epochs_phrase(record) == "12 more epochs on runs of unknown length (? + 11 + 12)"


def test_a_folder_whose_record_starts_from_itself_ends_the_chain_as_unknown(tmp_path):
    # a shipped folder replaced by its own continuation before lineages were recorded: followed naively, its
    # record names itself and the chain would count its epochs again and again
    _run(tmp_path / "models" / "shipped", 18, initialised_from="models/shipped")
    lineage = training_lineage({"epochs": 5, "initialised_from": "models/shipped"}, base=tmp_path)
    assert [(step["folder"], step["epochs"]) for step in lineage] == [("models/shipped", 18), ("models/shipped", None)]
    assert total_epochs(5, lineage) is None


def test_models_table_and_run_list_say_the_whole_chain(tmp_path):
    record = {"name": SHIPPED_RUNS["hrvae-e2e"], "setting": "standard", "dataset": "e2e", "epochs": 12,
              "best_epoch": 12, "initialised_from": "~/runs/middle",
              "lineage": [{"folder": "~/runs/middle", "epochs": 11, "command": "python train.py --a",
                           "initialised_from": "models/hrvae-e2e"},
                          {"folder": "models/hrvae-e2e", "epochs": 25, "command": "python train.py --b",
                           "initialised_from": None}],
              "valid": {}, "metric_for_best_model": "paper_nll", "completed_steps": 1, "training_wall_time_s": 60,
              "evaluation_wall_time_s": 60, "device": "CPU", "command": "python train.py --c",
              "evaluation_command": "python evaluate.py"}
    assert epochs_phrase(record) == "48 epochs (25 + 11 + 12, each run warm-started from the last)"
    assert "| standard | E2E, 48 epochs (25 + 11 + 12, each run warm-started from the last) |" in \
        models_markdown([record])
    runs = runs_markdown([record])
    assert "Initialised from `~/runs/middle`, 11 epochs: `python train.py --a`." in runs
    assert "Initialised from `models/hrvae-e2e`, 25 epochs: `python train.py --b`." in runs
    # a record from before lineages were kept says what it knows
    assert epochs_phrase(record | {"lineage": None}) == "12 more epochs on the previous model"
    assert epochs_phrase(record | {"initialised_from": None}) == "12 epochs from scratch"


def test_a_chains_validation_curve_is_numbered_across_its_runs(tmp_path):
    def validation(epoch, paper_nll):
        return {"epoch": epoch, "step": 10 * epoch, "elbo_nll": 60.0, "reconstruction": 50.0, "kl": 10.0,
                "paper_nll": paper_nll, "active_units": 40}

    _run(tmp_path / "first", 2)
    first = json.loads((tmp_path / "first" / "train_results.json").read_text())
    first["validations"] = [validation(1, 50.0), validation(2, 49.0)]
    (tmp_path / "first" / "train_results.json").write_text(json.dumps(first))
    from hf_hrvae.paper.results import RunSpec, build_record, long_run_markdown

    trained = {"command": "python examples/train.py", "epochs": 2, "best_epoch": 2, "completed_steps": 20,
               "wall_time_s": 60.0, "metric_for_best_model": "paper_nll", "initialised_from": str(tmp_path / "first"),
               "validations": [validation(1, 48.0), validation(2, 47.0)]}
    evaluated = {"command": "python examples/evaluate.py", "wall_time_s": 1.0, "valid": {}, "paper_protocol": None}
    record = build_record(RunSpec("e2e", "hrvae", "standard", "continued"), trained, evaluated, [])
    assert [v["paper_nll"] for v in record["lineage"][0]["validation_curve"]] == [50.0, 49.0]
    text = long_run_markdown([record], "e2e-hrvae-standard-continued")
    assert "exported: epoch 2 of this run" in text and f"1–2: `{tmp_path / 'first'}`; 3–4: this run." in text
    assert "| 2 | 10.00 | 40 | – | 50.00 | 60.00 | – (–) | 49.00 |" in text  # the earlier run's last epoch
    assert "| 4 **(exported)** | 10.00 | 40 | – | 50.00 | 60.00 | – (–) | 47.00 |" in text
    assert "| 2 **(exported)**" not in text


def test_a_folder_replaced_by_its_own_continuation_keeps_the_chain_it_had(e2e_folder, tmp_path, monkeypatch):
    """`models/NAME` continued twice, each time replaced by the result (as a shipped model is): the trainer resolves
    the lineage when a run starts, so the second run's chain is the real one, not a loop through the new folder."""
    import shutil

    from hf_hrvae.training import Trainer
    from test_training import tiny_args

    monkeypatch.chdir(tmp_path)
    Trainer(tiny_args(e2e_folder, tmp_path / "scratch", max_train_steps=1)).run()
    shutil.copytree(tmp_path / "scratch", tmp_path / "models" / "m")
    for run in ("second", "third"):
        Trainer(tiny_args(e2e_folder, tmp_path / run, model_name_or_path="models/m", embedding_size=None,
                          hidden_size=None, max_train_steps=1)).run()
        shutil.rmtree(tmp_path / "models" / "m")
        shutil.copytree(tmp_path / run, tmp_path / "models" / "m")
    results = json.loads((tmp_path / "models" / "m" / "train_results.json").read_text())
    lineage = training_lineage(results)
    # the second run (from models/m), then the run from scratch; without the resolved lineage: models/m 20 times
    assert [(step["folder"], step["initialised_from"]) for step in lineage] == [("models/m", "models/m"),
                                                                                ("models/m", None)]
    assert total_epochs(results["epochs"], lineage) == 3 and "validations" not in lineage[0]
    assert training_lineage(results, validations=True)[1]["validations"]  # the run from scratch's curve
