#!/usr/bin/env python
"""Regenerate the tables, samples and figures of docs/results.md (the short account), results/README.md (every
run's curve, samples and commands) and the README's models table from the records in results/.

    python examples/paper/make_results.py

Only the text between `<!-- BEGIN x -->` / `<!-- END x -->` markers is replaced, in whichever of the two documents
holds them; the logic lives in `hf_hrvae/paper/results.py`.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from transformers import HfArgumentParser

from hf_hrvae.paper.results import EQUAL_BUDGET_RUNS, fill_documents, load_records, plot_figure2, results_sections


@dataclass
class MakeResultsArguments:
    results_dir: str = "results"
    document: str = "docs/results.md"
    run_log: str = "results/README.md"
    readme: str = "README.md"
    figure: str = "docs/figures/figure2-e2e-inputless.png"
    equal_budget_figure: str = "docs/figures/figure2-e2e-inputless-equal-budget.png"


def main():
    (args,) = HfArgumentParser(MakeResultsArguments).parse_args_into_dataclasses()
    records = load_records(args.results_dir)
    document = Path(args.document)
    figures = [plot_figure2(records, args.figure)]
    if any(r["name"] in EQUAL_BUDGET_RUNS for r in records):
        figures.append(plot_figure2(records, args.equal_budget_figure, names=EQUAL_BUDGET_RUNS))
    links = [os.path.relpath(figure, document.parent) for figure in figures]
    sections = results_sections(records, links[0], links[1] if len(links) > 1 else None)
    paths = [document, Path(args.run_log), Path(args.readme)]
    texts = fill_documents({path: path.read_text(encoding="utf-8") for path in paths}, sections)
    for path, text in texts.items():
        path.write_text(text, encoding="utf-8")
    print(f"{', '.join(map(str, paths))}: {len(records)} runs; {', '.join(map(str, figures))}")


if __name__ == "__main__":
    main()
