import re

from conftest import REPO_ROOT


def test_readme_usage_example_runs(monkeypatch, tmp_path, sentences):
    readme = (REPO_ROOT / "README.md").read_text()
    code = re.search(r"## Usage\n\n```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace = {"train_sentences": sentences}
    exec(compile(code, "README.md", "exec"), namespace)
    assert (tmp_path / "out" / "model.safetensors").exists()
    assert namespace["ids"].shape[0] == 5
    assert namespace["out"].loss.item() > 0


def test_readme_quick_start_prints_what_the_readme_says(capsys, monkeypatch):
    """The quick start runs on the shipped model and prints, line for line, the output the README shows."""
    readme = (REPO_ROOT / "README.md").read_text()
    match = re.search(r"## Quick start\n.*?```python\n(.*?)```\n.*?```text\n(.*?)```", readme, re.S)
    code, shown = match.group(1), match.group(2)
    monkeypatch.chdir(REPO_ROOT)
    exec(compile(code, "README.md (quick start)", "exec"), {})
    assert capsys.readouterr().out == shown
