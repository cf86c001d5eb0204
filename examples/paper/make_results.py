#!/usr/bin/env python
"""Regenerate the tables, samples and Figure 2 of docs/results.md from the records in results/.

    python examples/paper/make_results.py --results_dir results --document docs/results.md

Only the text between `<!-- BEGIN x -->` / `<!-- END x -->` markers is replaced; the logic lives in
`hf_hrvae/paper/results.py`.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from transformers import HfArgumentParser

from hf_hrvae.paper.results import EQUAL_BUDGET_RUNS, fill_markers, load_records, plot_figure2, results_sections


@dataclass
class MakeResultsArguments:
    results_dir: str = "results"
    document: str = "docs/results.md"
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
    document.write_text(fill_markers(document.read_text(encoding="utf-8"), sections), encoding="utf-8")
    print(f"{document}: {len(records)} runs; {', '.join(map(str, figures))}")


if __name__ == "__main__":
    main()
