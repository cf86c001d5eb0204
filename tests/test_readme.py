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
