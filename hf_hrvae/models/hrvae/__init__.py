"""HR-VAE as a transformers model: exactly the files a saved model carries as its remote code (`save_pretrained`
copies them next to the weights; `trust_remote_code=True` runs them where this package is not installed). They
import torch, transformers and each other only; this `__init__.py` is the one file that does not travel."""

from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parent
# every module of this folder: what a saved model folder and a Hub upload carry besides weights and tokenizer
CODE_FILES = tuple(sorted(path.name for path in MODEL_DIR.glob("*.py") if path.name != "__init__.py"))

__all__ = ["MODEL_DIR", "CODE_FILES"]
