"""Loading a saved model folder or Hub repository with one clear error: what the trainer, the evaluation and the
scripts share."""

from .errors import ModelNotFoundError


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


__all__ = ["load_pretrained"]
