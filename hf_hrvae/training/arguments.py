"""The flags of `examples/train.py` (`TrainingArguments`, in the style of transformers' `run_*_no_trainer`
scripts) and the model configuration they build."""

import logging
import re
from dataclasses import dataclass, field, make_dataclass

from transformers import SchedulerType

from ..metrics import BEST_MODEL_METRICS  # what --metric_for_best_model can choose (all lower-is-better)
from ..models.hrvae.configuration_hrvae import OPTION_CHOICES, PRESETS, SETTINGS, HRVAEConfig

logger = logging.getLogger("hf_hrvae.training")

DEFAULT_EVAL_IW_SAMPLES = 10


@dataclass
class _TrainingFlags:
    """The flags of `examples/train.py` other than the model options (HF `run_*_no_trainer` style)."""

    output_dir: str = field(metadata={"help": "where the best model, logs, curves and checkpoints go"})
    dataset_name: str | None = field(default=None, metadata={
        "help": "ptb, e2e, a Hub id, a local folder such as ../shared/data/e2e_nlg (train/validation[/test] files) "
                "or a single file (its training split); or give --train_file"})
    train_file: str | None = field(default=None, metadata={
        "help": "your own training text: .txt (one sentence a line), .csv or .json/.jsonl (--text_column)"})
    validation_file: str | None = field(default=None, metadata={"help": "like --train_file"})
    test_file: str | None = field(default=None, metadata={"help": "like --train_file (optional for training)"})
    validation_split_percentage: float = field(default=5, metadata={
        "help": "without validation data, this share of the training sentences is held out as validation"})
    text_column: str | None = field(default=None, metadata={"help": "column holding the text (known for ptb/e2e)"})
    setting: str = field(default="standard", metadata={"choices": list(SETTINGS)})
    num_train_epochs: int = 10
    max_train_steps: int | None = field(default=None, metadata={"help": "overrides num_train_epochs"})
    per_device_train_batch_size: int = field(default=128, metadata={"help": "the paper's maximum: 128"})
    per_device_eval_batch_size: int = 128
    learning_rate: float = field(default=1e-4, metadata={"help": "Adam, as the paper"})
    lr_scheduler_type: str = field(default="constant", metadata={
        "choices": [kind.value for kind in SchedulerType],
        "help": "transformers' get_scheduler: constant (the paper), linear, cosine, ...; over --num_train_epochs "
                "(or --max_train_steps), after --num_warmup_steps"})
    num_warmup_steps: int = field(default=0, metadata={"help": "steps of linear warm-up of the lr scheduler"})
    model_name_or_path: str | None = field(default=None, metadata={
        "help": "start from a saved model folder (its weights, config and tokenizer) with a fresh optimizer; the "
                "model options (but those that say 'with --model_name_or_path') and --preset then come from the "
                "folder; its vocabulary grows with the training data's new words seen "
                "--min_frequency times (new rows start as <unk>'s)"})
    keep_vocabulary: bool = field(default=False, metadata={
        "help": "with --model_name_or_path: keep the model's vocabulary (new words stay <unk>; their share is "
                "logged)"})
    weight_decay: float = field(default=1e-5, metadata={"help": "L2 in Adam, as the authors' code"})
    adam_epsilon: float = field(default=1e-6, metadata={"help": "as the authors' code"})
    max_grad_norm: float = field(default=0.0, metadata={"help": "clip gradients to this norm; 0: no clipping (paper)"})
    seed: int = 42
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    min_frequency: int | None = field(default=None, metadata={"help": "vocabulary: default 4 for e2e, 1 otherwise"})
    max_vocab_size: int | None = None
    gradient_accumulation_steps: int = 1
    mixed_precision: str | None = field(default=None, metadata={
        "choices": ["no", "bf16", "fp16"],
        "help": "autocast of the training forward (default: accelerate's config); validation always runs in fp32"})
    checkpointing_steps: str | None = field(default=None, metadata={"help": "'epoch' or a number of steps"})
    checkpoints_total_limit: int | None = field(default=None, metadata={"help": "keep only the newest N checkpoints"})
    resume_from_checkpoint: str | None = field(default=None, metadata={
        "help": "'latest', a checkpoint folder (OUTPUT_DIR/checkpoints/step_N), or a folder holding checkpoints "
                "(OUTPUT_DIR or OUTPUT_DIR/checkpoints: its newest)"})
    with_tracking: bool = False
    report_to: str = field(default="all", metadata={"help": "accelerate trackers (tensorboard, wandb, ...)"})
    metric_for_best_model: str = field(default="elbo_nll", metadata={
        "choices": list(BEST_MODEL_METRICS),
        "help": "the validation metric that chooses the exported epoch and drives early stopping (lower is better): "
                "elbo_nll (a bound), iw_nll (importance-weighted, a tighter bound; --eval_iw_samples), paper_nll "
                "(the authors' choice: not a bound), reconstruction (not a bound)"})
    eval_iw_samples: int | None = field(default=None, metadata={
        "help": f"importance samples per validation sentence for iw_nll (default {DEFAULT_EVAL_IW_SAMPLES} with "
                "--metric_for_best_model iw_nll, otherwise 0: not computed)"})
    eval_full_every_epochs: int = field(default=1, metadata={
        "help": "compute validation's two slow metrics, IW-NLL (with --eval_iw_samples) and MI, every N epochs (and "
                "at the last) instead of every epoch; must be 1 with --metric_for_best_model iw_nll"})
    eval_generation_samples: int = field(default=100, metadata={
        "help": "every validation: greedy reconstructions of this many fixed validation sentences (BLEU, repeat "
                "rate) and as many prior samples (repeat rate, distinct-1/2); 0: none"})
    early_stopping_patience: int | None = field(default=None, metadata={
        "help": "stop after this many validations without a better --metric_for_best_model"})
    group_by_length: bool = field(default=False, metadata={
        "help": "shuffled batches of sentences of similar length (less padding)"})
    batch_order: str = field(default="shuffled", metadata={
        "choices": ["shuffled", "sorted"],
        "help": "shuffled: a new order every epoch (random, or length groups with --group_by_length); sorted: the "
                "authors' code's order, the corpus sorted by length cut into consecutive batches, the same every "
                "epoch, shortest first"})
    preset: str = field(default="hrvae", metadata={"choices": list(PRESETS),
                                                   "help": "the paper's system to train (docs/baselines.md)"})
    init_embeddings: str = field(default="none", metadata={
        "choices": ["none", "word2vec"],
        "help": "word2vec: initialise the word embeddings with word2vec (gensim) trained on the training split, as "
                "the paper; the vectors are cached"})
    embeddings_cache_dir: str | None = field(default=None, metadata={
        "help": "cache of the word2vec vectors (default ~/.cache/hf_hrvae/word2vec or $HF_HRVAE_CACHE/word2vec)"})
    max_train_minutes: float | None = field(default=None, metadata={
        "help": "time budget: no epoch starts that would end after it (predicted from the last epoch's time)"})
    max_decode_length: int = 128
    push_to_hub: bool = field(default=False, metadata={"help": "upload the best model and its card at the end"})
    hub_model_id: str | None = field(default=None, metadata={"help": "the Hub repository, e.g. user/hrvae-e2e"})
    hub_private: bool = False

    def __post_init__(self):
        if (self.dataset_name is None) == (self.train_file is None):
            raise ValueError("Give the data as --dataset_name (a corpus, a Hub id, a folder or a file) or as "
                             "--train_file [--validation_file] [--test_file], not both and not neither.")
        if self.dataset_name is not None and (self.validation_file or self.test_file):
            raise ValueError("--validation_file and --test_file go with --train_file, not with --dataset_name.")
        if not 0 < self.validation_split_percentage < 100:
            raise ValueError(f"--validation_split_percentage must be in (0, 100), got "
                             f"{self.validation_split_percentage}.")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}.")
        if self.per_device_train_batch_size > 128:
            logger.warning("--per_device_train_batch_size > 128: the paper's batches hold at most 128 sentences.")
        if self.checkpointing_steps not in (None, "epoch") and not str(self.checkpointing_steps).isdigit():
            raise ValueError(f"--checkpointing_steps must be 'epoch' or a positive integer, got {self.checkpointing_steps!r}.")
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id (e.g. your-name/hrvae-e2e).")
        if self.max_train_minutes is not None and self.max_train_minutes <= 0:
            raise ValueError(f"--max_train_minutes must be > 0, got {self.max_train_minutes}.")
        if self.max_train_steps is None and self.num_train_epochs < 1:
            raise ValueError("--num_train_epochs must be >= 1 (or give --max_train_steps).")
        if self.batch_order not in ("shuffled", "sorted"):
            raise ValueError(f"--batch_order must be 'shuffled' or 'sorted', got {self.batch_order!r}.")
        if self.batch_order == "sorted" and self.group_by_length:
            raise ValueError("--batch_order sorted is the authors' fixed length-sorted order: leave out "
                             "--group_by_length (which shuffles length groups).")
        if self.num_warmup_steps < 0:
            raise ValueError(f"--num_warmup_steps must be >= 0, got {self.num_warmup_steps}.")
        if self.num_warmup_steps and self.lr_scheduler_type == "constant":
            logger.warning("--num_warmup_steps has no effect with --lr_scheduler_type constant (transformers' "
                           "get_scheduler ignores it there); use constant_with_warmup for a warm-up.")
        if self.lr_scheduler_type not in {kind.value for kind in SchedulerType}:
            raise ValueError(f"--lr_scheduler_type must be one of {[kind.value for kind in SchedulerType]}, "
                             f"got {self.lr_scheduler_type!r}.")
        if self.model_name_or_path is not None:
            given = [name for name in MODEL_OPTIONS
                     if getattr(self, name) is not None and name not in WARM_START_OPTIONS]
            if given:
                raise ValueError(f"--model_name_or_path takes the model's options from its folder; leave out "
                                 f"{', '.join('--' + name for name in given)}.")
            if self.init_embeddings != "none":
                raise ValueError("--model_name_or_path starts from trained embeddings: leave out --init_embeddings.")
            if self.max_vocab_size is not None:
                raise ValueError("--model_name_or_path keeps the model's vocabulary (extended with new words, or "
                                 "--keep_vocabulary): leave out --max_vocab_size.")
        elif self.keep_vocabulary:
            raise ValueError("--keep_vocabulary applies to --model_name_or_path (a saved model's vocabulary).")
        if self.metric_for_best_model not in BEST_MODEL_METRICS:
            raise ValueError(f"--metric_for_best_model must be one of {list(BEST_MODEL_METRICS)}, "
                             f"got {self.metric_for_best_model!r}.")
        if self.eval_iw_samples is None:
            self.eval_iw_samples = DEFAULT_EVAL_IW_SAMPLES if self.metric_for_best_model == "iw_nll" else 0
        if self.eval_iw_samples < 0:
            raise ValueError(f"--eval_iw_samples must be >= 0, got {self.eval_iw_samples}.")
        if self.eval_full_every_epochs < 1 or self.eval_generation_samples < 0:
            raise ValueError("--eval_full_every_epochs must be >= 1 and --eval_generation_samples >= 0.")
        if self.metric_for_best_model == "iw_nll" and self.eval_full_every_epochs != 1:
            raise ValueError("--metric_for_best_model iw_nll compares every epoch's IW-NLL: leave "
                             "--eval_full_every_epochs at 1.")
        if self.metric_for_best_model == "iw_nll" and self.eval_iw_samples == 0:
            raise ValueError("--metric_for_best_model iw_nll needs --eval_iw_samples >= 1.")


# The model options: every field of HRVAEConfig but the ones the data or other flags set. Each becomes a flag of the
# same name, type and choices (OPTION_CHOICES), its help from the config's docstring; None keeps the preset's value.
_NOT_OPTIONS = {"vocab_size", "setting", "max_decode_length", "preset", "pad_token_id", "unk_token_id", "bos_token_id",
                "eos_token_id", "tie_word_embeddings"}
MODEL_OPTIONS = tuple(name for name in HRVAEConfig.__annotations__ if name not in _NOT_OPTIONS)
# The model options that --model_name_or_path accepts: they add to a saved model without changing its function, or
# change only how it trains (fine_tuning.with_decoder_positions, with_dropout, with_unlikelihoods;
# widening.with_hidden_size).
WARM_START_OPTIONS = ("decoder_positions", "dropout", "hidden_size", "neighbour_unlikelihood", "repeat_unlikelihood",
                      "prior_repeat_unlikelihood")
WARM_START_HELP = {"hidden_size": "widens the saved model without changing its function (docs/training.md)"}


def _config_help() -> dict[str, str]:
    """`{field: the first sentence of its entry in HRVAEConfig's docstring}`."""
    entries = re.findall(r"^ {8}(\w+) \(`[^\n]*\n((?: {12}.*\n?)+)", HRVAEConfig.__doc__ or "", re.M)
    return {name: re.split(r"(?<=\.)\s(?=[A-Z`])", " ".join(text.split()), maxsplit=1)[0] for name, text in entries}


def _model_option_field(name: str, help_texts: dict):
    kind = HRVAEConfig.__annotations__[name]
    base = next((arg for arg in getattr(kind, "__args__", ()) if arg is not type(None)), kind)
    metadata = {"help": f"{help_texts.get(name, f'HRVAEConfig.{name}')} (default: the preset's value)"}
    if name in WARM_START_OPTIONS:
        metadata["help"] += f"; with --model_name_or_path: {WARM_START_HELP.get(name, 'applied to the saved model')}"
    if name in OPTION_CHOICES:
        metadata["choices"] = list(OPTION_CHOICES[name])
    # a bool typed plain `bool` (default None) is a bare switch for HfArgumentParser: `--bn_vae` or `--bn_vae false`
    return name, bool if base is bool else base | None, field(default=None, metadata=metadata)


_help = _config_help()
TrainingArguments = make_dataclass(
    "TrainingArguments", [_model_option_field(name, _help) for name in MODEL_OPTIONS], bases=(_TrainingFlags,),
    namespace={"__module__": __name__})
TrainingArguments.__doc__ = ("Flags of `examples/train.py`: the training flags, then one per model option "
                             "(`MODEL_OPTIONS`, derived from `HRVAEConfig`'s fields).")


def build_model_config(args: TrainingArguments, vocab_size: int) -> HRVAEConfig:
    """The preset's configuration with the options given on the command line on top."""
    overrides = {name: getattr(args, name) for name in MODEL_OPTIONS if getattr(args, name) is not None}
    return HRVAEConfig.from_preset(args.preset, vocab_size=vocab_size, setting=args.setting,
                                   max_decode_length=args.max_decode_length, **overrides)


__all__ = ["BEST_MODEL_METRICS", "DEFAULT_EVAL_IW_SAMPLES", "MODEL_OPTIONS", "WARM_START_OPTIONS", "TrainingArguments",
           "build_model_config"]
