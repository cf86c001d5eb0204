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


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower-case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", markdown, flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_every_relative_link_of_the_docs_reaches_a_file_and_heading():
    documents = [REPO_ROOT / "README.md", REPO_ROOT / "results" / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
    broken = []
    for document in documents:
        text = re.sub(r"```.*?```", "", document.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (document.parent / path).resolve() if path else document
            if not linked.exists():
                broken.append(f"{document.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked.read_text(encoding="utf-8")):
                broken.append(f"{document.name}: {target} (no such heading)")
    assert not broken, broken


def test_the_docs_stay_short_enough_to_read_in_minutes():
    """README + docs/ under 9,000 words, results.md under 2,000: run logs go to results/README.md (generated)."""
    words = {path.name: len(path.read_text(encoding="utf-8").split())
             for path in [REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")]}
    assert sum(words.values()) <= 9000, words
    assert words["results.md"] <= 2000, words
