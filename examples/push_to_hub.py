#!/usr/bin/env python
"""Upload a trained HR-VAE with a model card generated from its run.

    python examples/push_to_hub.py --model_name_or_path out/e2e --repo_id your-name/hrvae-e2e [--private]
    python examples/push_to_hub.py --model_name_or_path out/e2e --local_dir models/hrvae-e2e

The token comes from HF_TOKEN or `hf auth login`. `--local_dir` writes the same files and card into a new folder
instead (no network). The logic lives in `hf_hrvae/hub.py`.
"""

from dataclasses import dataclass, field

from hf_hrvae.hub import export_folder, push_folder
from hf_hrvae.scripts import parse_arguments, run_script


@dataclass
class PushArguments:
    model_name_or_path: str = field(metadata={"help": "a folder written by examples/train.py"})
    repo_id: str | None = field(default=None, metadata={
        "help": "e.g. your-name/hrvae-e2e; needed to upload; with --local_dir the card is named by it, or by the "
                "folder without it"})
    private: bool = False
    revision: str | None = field(default=None, metadata={"help": "a branch to push to (created if needed)"})
    commit_message: str | None = None
    license: str = "apache-2.0"
    local_dir: str | None = field(default=None, metadata={
        "help": "write the files and the card that would be uploaded into this new folder instead of uploading"})

    def __post_init__(self):
        if not self.repo_id and not self.local_dir:
            raise ValueError("--repo_id (user/name) is needed to upload; --local_dir FOLDER writes the files instead.")


def main():
    (args,) = parse_arguments(PushArguments)
    if args.local_dir:
        names = export_folder(args.model_name_or_path, args.local_dir, args.repo_id, revision=args.revision,
                              license=args.license)
        print(f"Wrote {len(names)} files to {args.local_dir}: {', '.join(names)}")
        return
    commit = push_folder(args.model_name_or_path, args.repo_id, private=args.private, revision=args.revision,
                         commit_message=args.commit_message, license=args.license)
    print(f"Uploaded: {getattr(commit, 'commit_url', args.repo_id)}")


if __name__ == "__main__":
    run_script(main)
