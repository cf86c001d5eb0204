#!/usr/bin/env python
"""What the latent knows: linear probes of E2E's meaning-representation attributes on the posterior means.

    python examples/probe_latent.py --model_name_or_path models/hrvae-e2e-inputless \
        --dataset_name ../shared/data/e2e_nlg --output_file out/probes.json --figure out/latents.png

Prints the probe table; the logic lives in `hf_hrvae/paper/analysis.py`.
"""


from hf_hrvae.paper.analysis import ProbeArguments, run_probes
from hf_hrvae.scripts import command_line, parse_arguments, run_script


def main():
    (args,) = parse_arguments(ProbeArguments)
    command = command_line()
    results = run_probes(args, command=command)
    print(f"{results['num_train']} train / {results['num_test']} test sentences; MI {results['mutual_info']:.3f}, "
          f"active units {results['active_units']}")
    print("| attribute | classes | probe on posterior means | on posterior samples | majority baseline "
          "(training split's class) | the test split's own majority share |")
    for attribute, row in results["probes"].items():
        sampled = results["probes_on_samples"][attribute]["accuracy"]
        print(f"| {attribute} | {row['num_classes']} | {row['accuracy']:.3f} | {sampled:.3f} | "
              f"{row['majority_baseline']:.3f} | {row['test_majority_share']:.3f} |")


if __name__ == "__main__":
    run_script(main)
