"""Training HR-VAE with accelerate: the flags (`arguments.py`), the loop (`trainer.py`), its checkpoints, the data
(`data.py`: corpora, your own files, the tokenizer, length-grouped batches), word2vec initialisation
(`embeddings.py`), fine-tuning a saved model on new text (`fine_tuning.py`), widening it (`widening.py`), folding an
inputless decoder's embedding (`folding.py`) and the chain of warm starts behind a model (`lineage.py`).
`examples/train.py` is its script."""

from .arguments import BEST_MODEL_METRICS, DEFAULT_EVAL_IW_SAMPLES, MODEL_OPTIONS, TrainingArguments, build_model_config
from .folding import fold_inputless_embedding
from .checkpoints import CHECKPOINT_DIR, STATE_FILE, export_checkpoint, find_checkpoint, list_checkpoints
from .trainer import LOG_FILE, NonFiniteLossError, Trainer, renumbered_entry, train, upgrade_state

__all__ = [
    "TrainingArguments", "Trainer", "train", "NonFiniteLossError", "BEST_MODEL_METRICS", "DEFAULT_EVAL_IW_SAMPLES",
    "MODEL_OPTIONS", "build_model_config", "CHECKPOINT_DIR", "STATE_FILE", "LOG_FILE", "export_checkpoint",
    "find_checkpoint", "list_checkpoints", "fold_inputless_embedding", "renumbered_entry", "upgrade_state",
]
