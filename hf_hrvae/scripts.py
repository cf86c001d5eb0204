"""What the `examples/` scripts share: parse their flags and end with a message, not a traceback, on user errors."""

import sys

from transformers import HfArgumentParser

from .data import DatasetUnavailableError


class CheckpointNotFoundError(FileNotFoundError):
    """`--resume_from_checkpoint` names no checkpoint of the trainer."""


# Errors the user can mend from the message alone: the scripts print it and exit with status 1. Library callers
# get the exception itself.
USER_ERRORS = (DatasetUnavailableError, CheckpointNotFoundError)


def parse_arguments(*dataclass_types):
    """`HfArgumentParser(...).parse_args_into_dataclasses()`, with the dataclasses' own checks (`__post_init__`
    raising ValueError) reported like argparse's: usage, the message, exit status 2."""
    parser = HfArgumentParser(dataclass_types)
    try:
        return parser.parse_args_into_dataclasses()
    except ValueError as error:
        parser.error(str(error))


def run_script(main) -> None:
    """Run a script's `main()`; a `USER_ERRORS` error ends it with `error: <message>` on stderr and status 1."""
    try:
        main()
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


__all__ = ["CheckpointNotFoundError", "USER_ERRORS", "parse_arguments", "run_script"]
