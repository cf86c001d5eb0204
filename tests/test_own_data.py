"""A user's own text: plain files, a folder with only a training split, and one clear line for each mistake."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from hf_hrvae.training.data import DataError, load_text_splits
from hf_hrvae.scripts import ModelNotFoundError, load_pretrained
from hf_hrvae.training import TrainingArguments, train

SENTENCES = [f"the {colour} cafe near the {place} serves {food} food ." for colour in ("red", "blue", "green", "gold")
             for place in ("river", "park", "station", "bridge", "market") for food in ("thai", "cheap", "fine")]


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny(output_dir, **data):
    return TrainingArguments(output_dir=str(output_dir), per_device_train_batch_size=8, embedding_size=16,
                             hidden_size=16, num_train_epochs=1, eval_generation_samples=4, **data)


def test_a_plain_text_file_trains_with_a_held_out_validation_share(tmp_path):
    results = train(tiny(tmp_path / "run", train_file=str(write_lines(tmp_path / "mine.txt", SENTENCES)),
                         validation_split_percentage=10))
    validation = results["validations"][0]
    assert validation["num_sentences"] == 6  # 10 % of 60 sentences held out
    assert (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize("kind", ["csv", "jsonl", "json"])
def test_csv_and_json_files_with_a_text_column(tmp_path, kind):
    path = tmp_path / f"mine.{kind}"
    if kind == "csv":
        path.write_text("id,sentence\n" + "".join(f"{i},{s}\n" for i, s in enumerate(SENTENCES)), encoding="utf-8")
    elif kind == "jsonl":
        path.write_text("".join(json.dumps({"id": i, "sentence": s}) + "\n" for i, s in enumerate(SENTENCES)))
    else:
        path.write_text(json.dumps([{"id": i, "sentence": s} for i, s in enumerate(SENTENCES)]))
    splits = load_text_splits(None, "sentence", data_files={"train": str(path)}, validation_split_percentage=5,
                              required=("train", "validation"))
    assert len(splits["train"]) + len(splits["validation"]) == len(SENTENCES) and len(splits["validation"]) == 3
    assert set(splits["train"]["text"]) | set(splits["validation"]["text"]) == set(SENTENCES)


def test_a_folder_with_only_a_training_file_and_a_file_as_dataset_name(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_lines(folder / "train.txt", SENTENCES)
    assert set(load_text_splits(str(folder), required=("train", "validation"), validation_split_percentage=5)) == \
        {"train", "validation"}
    file_splits = load_text_splits(str(folder / "train.txt"), required=("train", "validation"),
                                   validation_split_percentage=5)
    assert len(file_splits["validation"]) == 3 and "test" not in file_splits


def test_mistakes_with_the_data_raise_one_typed_error(tmp_path):
    blank = write_lines(tmp_path / "blank.txt", ["", "   ", ""])
    (tmp_path / "empty.txt").write_text("")
    two = tmp_path / "two.csv"
    two.write_text("a,b\nx,y\n")
    cases = [
        (dict(data_files={"train": str(tmp_path / "missing.txt")}), "no such file"),
        (dict(data_files={"train": str(tmp_path / "empty.txt")}), "is empty"),
        (dict(data_files={"train": str(blank)}, validation_split_percentage=5), "holds no text"),
        (dict(data_files={"train": str(two)}, validation_split_percentage=5), "pass --text_column"),
        (dict(data_files={"train": str(write_lines(tmp_path / "x.docx", SENTENCES))}), "unknown kind of file"),
        (dict(data_files={"train": str(write_lines(tmp_path / "only.txt", SENTENCES))}), "missing \\['validation'\\]"),
    ]
    for kwargs, message in cases:
        with pytest.raises(DataError, match=message):
            load_text_splits(None, required=("train", "validation"), **kwargs)
    with pytest.raises(ValueError, match="not both and not neither"):
        TrainingArguments(output_dir="x")


def test_a_model_path_that_is_no_model_says_so(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such model folder"):
        load_pretrained(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="holds no config.json"):
        load_pretrained(str(tmp_path / "empty"))


def run_script(name, *flags):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(REPO_ROOT / "examples" / name), *map(str, flags)],
                          capture_output=True, text=True, timeout=300, env=env)


def test_scripts_answer_each_mistake_with_one_line(tmp_path, monkeypatch, capsys):
    only_train = write_lines(tmp_path / "only.txt", SENTENCES)
    (tmp_path / "empty.txt").write_text("")
    shipped = REPO_ROOT / "models" / "hrvae-e2e-inputless"
    # one case as a user runs it, a separate process (stderr as a terminal shows it); the others in this process
    result = run_script("train.py", "--train_file", tmp_path / "empty.txt", "--output_dir", tmp_path / "o1")
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "is empty" in result.stderr
    assert "Traceback" not in result.stderr
    cases = [
        ("train.py", ["--train_file", tmp_path / "nope.txt", "--output_dir", tmp_path / "o2"], "no such file"),
        ("evaluate.py", ["--model_name_or_path", tmp_path / "nowhere", "--dataset_name", only_train],
         "no such model folder"),
        ("evaluate.py", ["--model_name_or_path", shipped, "--dataset_name", tmp_path, "--split", "test"],
         "missing ['test']: put test files (.txt, .csv, .jsonl) in the folder"),
    ]
    for script, flags, message in cases:
        code, err = run_in_process(script, flags, monkeypatch, capsys)
        lines = err.strip().splitlines()
        assert code == 1 and lines and lines[-1].startswith("error: ") and message in lines[-1], (script, err[-800:])
        assert "Traceback" not in err


def test_a_corrupt_weights_file_says_so(tmp_path):
    from hf_hrvae import HRVAEConfig, HRVAEModel, build_tokenizer

    tokenizer = build_tokenizer(SENTENCES)
    HRVAEModel(HRVAEConfig(vocab_size=len(tokenizer), embedding_size=8, hidden_size=8)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert load_pretrained(str(tmp_path))[0].config.hidden_size == 8
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelNotFoundError, match="the folder did not load"):
        load_pretrained(str(tmp_path))


def run_in_process(script, flags, monkeypatch, capsys):
    """Run an example script as `python examples/<script> <flags>` would, in this process (faster than a child)."""
    import runpy

    monkeypatch.setattr(sys, "argv", [str(REPO_ROOT / "examples" / script), *map(str, flags)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO_ROOT / "examples" / script), run_name="__main__")
    return exit_info.value.code, capsys.readouterr().err


def test_push_export_and_probe_answer_each_mistake_with_one_line(tmp_path, monkeypatch, capsys):
    shipped = REPO_ROOT / "models" / "hrvae-e2e-inputless"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "plain").mkdir()
    write_lines(tmp_path / "plain" / "train.txt", SENTENCES)
    write_lines(tmp_path / "plain" / "test.txt", SENTENCES)
    cases = [
        ("push_to_hub.py", ["--model_name_or_path", tmp_path / "nowhere", "--repo_id", "a/b", "--local_dir",
                            tmp_path / "o"], "no such folder"),
        ("push_to_hub.py", ["--model_name_or_path", tmp_path / "empty", "--repo_id", "a/b", "--local_dir",
                            tmp_path / "o"], "lacks config.json, model.safetensors"),
        ("push_to_hub.py", ["--model_name_or_path", shipped, "--repo_id", "a/b", "--local_dir", tmp_path / "full"],
         "is not empty"),
        ("push_to_hub.py", ["--model_name_or_path", shipped, "--repo_id", "a/b"],  # the tests run offline
         "the upload failed (OfflineModeIsEnabled"),
        ("export_checkpoint.py", ["--run_dir", tmp_path / "nowhere", "--checkpoint", tmp_path / "c", "--output_dir",
                                  tmp_path / "o", "--reason", "r"], "no such folder; give the run's --output_dir"),
        ("export_checkpoint.py", ["--run_dir", shipped, "--checkpoint", tmp_path / "c", "--output_dir",
                                  tmp_path / "o", "--reason", "r"], "not a checkpoint of the trainer"),
        ("probe_latent.py", ["--model_name_or_path", tmp_path / "nowhere", "--dataset_name", tmp_path / "plain",
                             "--output_file", tmp_path / "p.json"], "no such model folder"),
        ("probe_latent.py", ["--model_name_or_path", shipped, "--dataset_name", tmp_path / "plain",
                             "--output_file", tmp_path / "p.json"], "the probes read E2E's meaning representations"),
    ]
    for script, flags, message in cases:
        code, err = run_in_process(script, flags, monkeypatch, capsys)
        lines = err.strip().splitlines()
        assert code == 1 and lines and lines[-1].startswith("error: ") and message in lines[-1], (script, err[-800:])
        assert "Traceback" not in err
