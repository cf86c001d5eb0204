import collections
import time
from pathlib import Path

import pytest
import torch

import hf_hrvae
from hf_hrvae import HRVAEConfig
from hf_hrvae.paper.benchmarking import (
    comparison_cells,
    count_host_syncs,
    decoding_flops_per_token,
    forward_flops_per_token,
    interleaved_seconds,
    median_seconds,
    package_file_test,
    paired_ratio,
    training_flops_per_token,
    write_table,
)


def test_flops_per_token_of_the_papers_model():
    parts = forward_flops_per_token(HRVAEConfig(vocab_size=1196))
    # encoder gates: 2 * 4H * (E + H) + 2 * 4H * (H + H), H = 256, E = 512
    assert parts["encoder"] == 2 * 1024 * 768 + 2 * 1024 * 512
    assert parts["heads"] == 2 * 2 * 1024 * 1024  # mu and logvar from the 1024-d state at every step
    assert parts["decoder"] == 2 * 1024 * (512 + 512 + 256) + 2 * 1024 * 512  # input: embedding and 2H condition
    assert parts["output"] == 2 * 256 * 1196
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
    assert training_flops_per_token(HRVAEConfig(vocab_size=1196)) == 3 * parts["total"]
    assert decoding_flops_per_token(HRVAEConfig(vocab_size=1196)) == parts["decoder"] + parts["output"]


def test_heads_are_per_sentence_without_holistic_kl():
    assert forward_flops_per_token(HRVAEConfig.from_preset("vae-lstm-base"))["heads"] == 0
    cnn = forward_flops_per_token(HRVAEConfig.from_preset("vae-cnn", vocab_size=100))
    assert cnn["decoder"] == 2 * (512 + 32) * 256 + 3 * 2 * 3 * 256 * 256


def test_interleaved_timing_alternates_and_pairs_the_rounds():
    calls = []
    times = interleaved_seconds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three timed rounds, each running a then b
    assert set(times) == {"a", "b"} and len(times["a"]) == len(times["b"]) == 3
    # the median of the per-round ratios, not the ratio of the medians
    assert paired_ratio([2.0, 9.0, 3.0], [1.0, 3.0, 1.0]) == 3.0
    assert paired_ratio([2.0, 9.0, 30.0], [1.0, 10.0, 1.0]) == 2.0
    with pytest.raises(ValueError, match="the same non-zero length"):
        paired_ratio([1.0], [1.0, 2.0])


def test_count_host_syncs_finds_read_backs_and_data_dependent_shapes():
    x = torch.arange(6.0)
    with count_host_syncs() as calls:
        x.sum().item()
        x.tolist()
        bool(x[0] > 1)
        x[x > 2].sum()  # boolean-mask indexing: an output size known only on the device
        x.nonzero()
        torch.zeros(6).index_put_((x > 3,), torch.tensor(1.0))
        x[torch.tensor([0, 2])] + x.index_select(0, torch.tensor([1]))  # index tensors: no synchronisation
        counts = torch.tensor([2, 0, 1])
        torch.repeat_interleave(counts, counts)  # the output size is sum(counts), on the device
        torch.repeat_interleave(counts, counts, output_size=3)  # given: nothing to wait for
        torch.unique(counts)
        torch.arange(counts.sum())  # a tensor where a number is expected: read back without .item()
    operations = collections.Counter()
    for (operation, _), count in calls.items():
        operations[operation] += count
    assert operations == {
        "Tensor.item": 1, "Tensor.tolist": 1, "Tensor.__bool__": 1, "aten.index.Tensor with a boolean mask": 1,
        "aten.nonzero.default": 1, "aten.index_put_.default with a boolean mask": 1,
        "aten.repeat_interleave.Tensor": 1, "aten._unique2.default": 1, "aten._local_scalar_dense.default": 1,
    }
    assert {where for _, where in calls} == {"?"}  # none of these lines is in hf_hrvae


@pytest.mark.parametrize("outside", [
    "/somewhere/hf_hrvae/tests/x.py",  # a clone named like the package: its tests ...
    "/somewhere/hf_hrvae/.venv/lib/python3.12/site-packages/torch/x.py",  # ... and a virtual environment inside it
    "/somewhere/else/hf_hrvae_tools/x.py",
])
def test_count_host_syncs_attributes_by_the_package_directory_not_a_path_substring(outside):
    x = torch.arange(3.0)
    package_dir = Path(hf_hrvae.__file__).resolve().parent
    with count_host_syncs() as calls:
        exec(compile("x.sum().item()", outside, "exec"), {"x": x})
        exec(compile("x.sum().item()", str(package_dir / "some_module.py"), "exec"), {"x": x})
    assert calls == {("Tensor.item", "?"): 1, ("Tensor.item", "some_module.py:1"): 1}


def test_package_file_test_decides_by_the_resolved_directory(tmp_path):
    in_package = package_file_test()
    package_dir = Path(hf_hrvae.__file__).resolve().parent
    assert in_package(str(package_dir / "modeling_hrvae.py"))
    assert in_package(str(package_dir / "sub" / ".." / "training.py"))
    assert not in_package(str(package_dir / "paper" / "benchmarking.py"))  # the counter itself
    assert not in_package(str(package_dir.parent / "tests" / "test_x.py"))
    assert not in_package(str(tmp_path / "hf_hrvae" / "modeling_hrvae.py"))
    assert not in_package("<frozen runpy>") and not in_package("")


def test_comparison_cells_give_medians_and_the_paired_ratio():
    times = {"slow": [4.0, 9.0, 6.0], "fast": [2.0, 3.0, 4.0]}  # ratios 2, 3, 1.5
    assert comparison_cells(times, "slow", "fast") == "| 6.0000 | 3.0000 | 2.00 |"


def test_median_seconds_times_each_run_after_the_warm_up(monkeypatch):
    calls = []
    clock = iter(range(100))
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock) ** 2)  # run r takes (2k + 1) "seconds"
    median, times = median_seconds(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and times == [1, 5, 9] and median == 5


def test_write_table_writes_and_returns_the_markdown(tmp_path, capsys):
    path = tmp_path / "table.md"
    assert write_table(["| a |", "|---|"], str(path)) == "| a |\n|---|\n" == path.read_text()
    assert "| a |" in capsys.readouterr().out
    assert write_table(["x"]) == "x\n"  # no file asked for


def test_the_benchmark_script_measures_every_part_and_writes_its_record(e2e_folder, tmp_path, monkeypatch, capsys):
    import json
    import runpy
    import sys

    from conftest import REPO_ROOT

    script = REPO_ROOT / "examples" / "benchmarks" / "benchmark.py"
    flags = ["--data_folder", e2e_folder, "--batch_size", "8", "--num_batches", "2", "--repeats", "1",
             "--iw_sentences", "2", "--iw_samples", "2", "--compare_paths", "--lstm_path", "stepwise",
             "--output_json", tmp_path / "b.json", "--output_md", tmp_path / "b.md"]
    monkeypatch.setattr(sys, "argv", [str(script), *map(str, flags)])
    runpy.run_path(str(script), run_name="__main__")
    results = json.loads((tmp_path / "b.json").read_text())
    assert results["naive_minus_fused_loss"] < 1e-3 and results["lstm_path"] == "stepwise"
    assert [row["batches"] for row in results["training"]] == ["length-grouped", "random"]
    for row in results["training"]:
        assert {"fused", "naive", "fused_library"} <= set(row) and row["speedup"] > 0 and row["library_over_fused"] > 0
    assert [(g["batch"], g["new_tokens"]) for g in results["generation"]] == [(1, 16), (1, 64), (128, 16), (128, 64)]
    assert results["iw_sentences_per_s"] > 0 and results["prior_sampling_sentences_per_s"] > 0
    assert sum(results["host_syncs_per_training_step"].values()) == 1
    table = (tmp_path / "b.md").read_text()
    assert table in capsys.readouterr().out and "| training step (batch 8) |" in table
    from hf_hrvae.models.hrvae import recurrence_hrvae

    assert recurrence_hrvae.FORCE_STEPWISE is None  # the forced path does not outlive the run
