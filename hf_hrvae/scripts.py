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

USER_ERRORS = (UserError,)  # printed as one line by run_script


def load_pretrained(model_name_or_path: str):
    """`(model, tokenizer)` of a model folder or Hub repository (with `hf_hrvae`'s classes), with one clear
    `ModelNotFoundError` for a path that is no model folder, a repository that cannot be reached, or files that
    do not load (a corrupt `model.safetensors`)."""
    import re
    from pathlib import Path

    from transformers import AutoModel, AutoTokenizer

    path = Path(model_name_or_path).expanduser()
    if path.is_dir() and not (path / "config.json").exists():
        raise ModelNotFoundError(f"--model_name_or_path {model_name_or_path}: the folder holds no config.json; give "
                                 "a folder written by examples/train.py (or save_pretrained).")
    if not path.is_dir() and not re.fullmatch(r"[\w.-]+/[\w.-]+", model_name_or_path):
        raise ModelNotFoundError(f"--model_name_or_path {model_name_or_path}: no such model folder (and not a Hub "
                                 "repository id, user/name).")
    try:
        model = AutoModel.from_pretrained(str(path) if path.is_dir() else model_name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(str(path) if path.is_dir() else model_name_or_path)
    except Exception as error:  # OSError (missing or unreachable), SafetensorsError (corrupt), ValueError ...
        where = "the folder" if path.is_dir() else "the Hub repository (or a local folder of that name)"
        raise ModelNotFoundError(f"--model_name_or_path {model_name_or_path}: {where} did not load "
                                 f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})."
                                 ) from error
    return model, tokenizer


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
