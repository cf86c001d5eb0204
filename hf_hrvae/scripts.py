"""What the `examples/` scripts share: parse their flags and end with a message, not a traceback, on user errors."""

import sys

from transformers import HfArgumentParser

from .errors import (  # noqa: F401  (re-exported: where the scripts' callers found them first)
    CheckpointNotFoundError,
    DataError,
    DatasetUnavailableError,
    ModelNotFoundError,
    UserError,
)
from .loading import load_pretrained  # noqa: F401  (re-exported)

USER_ERRORS = (UserError,)  # printed as one line by run_script


def parse_arguments(*dataclass_types):
    """`HfArgumentParser(...).parse_args_into_dataclasses()`, with the dataclasses' own checks (`__post_init__`
    raising ValueError) reported like argparse's: usage, the message, exit status 2."""
    parser = HfArgumentParser(dataclass_types)
    try:
        return parser.parse_args_into_dataclasses()
    except ValueError as error:
        parser.error(str(error))


def command_line(argv: list[str] | None = None) -> str:
    """The command that started this script, as records and cards show it: `python examples/train.py --flag ...`
    with the script's path relative to the current directory, or absolute when the script lies outside it (a
    frozen copy of the code, `~/runs/src-<sha>/examples/train.py`: a relative `../../root/...` would name no
    path on another machine once the home directory is written `~`)."""
    import os
    import shlex

    script, *flags = sys.argv if argv is None else argv
    relative = os.path.relpath(script)
    shown = os.path.abspath(script) if relative == ".." or relative.startswith(".." + os.sep) else relative
    return shlex.join(["python", shown, *flags])


def run_script(main) -> None:
    """Run a script's `main()`; a `USER_ERRORS` error ends it with `error: <message>` on stderr and status 1."""
    try:
        main()
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


__all__ = ["CheckpointNotFoundError", "ModelNotFoundError", "command_line", "load_pretrained", "USER_ERRORS", "parse_arguments",
           "run_script"]
