"""The training loop of `examples/train.py` (accelerate: CPU, one or several GPUs, DDP over gloo on CPUs)."""

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, get_scheduler

from .arguments import TrainingArguments, build_model_config
from .checkpoints import CHECKPOINT_DIR, STATE_FILE, find_checkpoint, list_checkpoints
from .data import (EpochSampler, default_min_frequency, load_text_splits, padding_fraction, tokenize_splits,
                   tokenizer_for)
from .embeddings import Word2VecSettings, initialise_embeddings, word2vec_vectors
from ..evaluation import evaluate_model
from .fine_tuning import adapt_vocabulary, with_decoder_positions, with_dropout, with_unlikelihoods
from .widening import with_hidden_size
from .lineage import training_lineage
from ..models.hrvae.modeling_hrvae import HRVAEModel
from ..plotting import plot_training_curves
from .utils import check_mixed_precision, device_description, sample_indices
from ..loading import load_pretrained
from ..text_quality import prior_sample_metrics

logger = logging.getLogger(__name__)

LOG_FILE = "train_log.jsonl"

class NonFiniteLossError(RuntimeError):
    pass


class Trainer:
    """Holds the run's state; `run()` trains. Callbacks `fn(trainer)` run after every optimizer step."""

    def __init__(self, args: TrainingArguments, callbacks=(), command: str | None = None):
        self.args = args
        self.command = command
        self.vocabulary = None  # with --model_name_or_path: how its vocabulary met the new data (adapt_vocabulary)
        self.callbacks = list(callbacks)
        self.output_dir = Path(args.output_dir)
        self.accelerator = Accelerator(
            mixed_precision=args.mixed_precision,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            log_with=args.report_to if args.with_tracking else None,
            project_dir=args.output_dir,
        )
        check_mixed_precision(self.accelerator.mixed_precision, self.accelerator.device)
        # `epoch`: epochs completed (the running epoch's 0-based index, which seeds its batch order); every record
        # (validations, logs, `best_epoch`) counts epochs from 1.
        self.state = {"completed_steps": 0, "epoch": 0, "batch_in_epoch": 0, "epochs_counted_from": 1,
                      "metric_for_best_model": args.metric_for_best_model, "best_metric": None, "best_epoch": None,
                      "epochs_without_improvement": 0, "log_lines": 0, "validations": []}

    # ------------------------------------------------------------------ set-up
    def setup(self):
        args, accelerator = self.args, self.accelerator
        set_seed(args.seed)
        with accelerator.main_process_first():
            files = {split: path for split, path in (("train", args.train_file), ("validation", args.validation_file),
                                                     ("test", args.test_file)) if path}
            splits = load_text_splits(args.dataset_name, args.text_column, args.max_train_samples,
                                      args.max_eval_samples, data_files=files or None,
                                      validation_split_percentage=args.validation_split_percentage,
                                      required=("train", "validation"), seed=args.seed)
            if args.model_name_or_path is not None:  # its vocabulary, extended with the new data's words or kept
                pretrained, tokenizer = load_pretrained(args.model_name_or_path)
                min_frequency = args.min_frequency or default_min_frequency(args.dataset_name)
                self.tokenizer, self.vocabulary = adapt_vocabulary(pretrained, tokenizer, splits["train"]["text"],
                                                                   min_frequency, args.keep_vocabulary)
            else:
                self.tokenizer = tokenizer_for(
                    args.dataset_name, splits["train"]["text"], args.min_frequency, args.max_vocab_size,
                    model_max_length=args.max_decode_length,
                )
            self.data = tokenize_splits(splits, self.tokenizer)
        if args.model_name_or_path is not None:
            self.model = with_unlikelihoods(
                with_dropout(with_decoder_positions(with_hidden_size(pretrained, args.hidden_size),
                                                    args.decoder_positions), args.dropout),
                neighbour=args.neighbour_unlikelihood, repeat=args.repeat_unlikelihood,
                prior_repeat=args.prior_repeat_unlikelihood)
            logger.info(f"Starting from the weights of {args.model_name_or_path} (a fresh optimizer).")
        else:
            self.model = HRVAEModel(build_model_config(args, len(self.tokenizer)))
        if args.init_embeddings == "word2vec":
            with accelerator.main_process_first():  # the main process trains and caches, the others load the cache
                vectors, found = word2vec_vectors(
                    self.tokenizer, splits["train"]["text"],
                    Word2VecSettings(vector_size=self.model.config.embedding_size, seed=args.seed),
                    args.embeddings_cache_dir)
            copied = initialise_embeddings(self.model, vectors, found)
            logger.info(f"word2vec: {copied} of {len(self.tokenizer)} embedding rows initialised")
        optimizer = torch.optim.Adam(  # fused: one kernel for all parameters (CPU and GPU)
            self.model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay, eps=args.adam_epsilon,
            fused=True,
        )
        collator = DataCollatorWithPadding(self.tokenizer)
        lengths = self.data["train"]["length"]
        self.sampler = EpochSampler(lengths, args.per_device_train_batch_size, args.seed, args.group_by_length,
                                    sort_by_length=args.batch_order == "sorted")
        # The loader's own generator: creating an iterator would otherwise draw from the global RNG, and a resumed
        # run (which creates one mid-epoch) would not replay the same dropout and z noise.
        train_loader = DataLoader(self.data["train"].remove_columns("length"), sampler=self.sampler,
                                  batch_size=args.per_device_train_batch_size, collate_fn=collator,
                                  generator=torch.Generator().manual_seed(args.seed))
        eval_loader = DataLoader(self.data["validation"].remove_columns("length"),
                                 batch_size=args.per_device_eval_batch_size, collate_fn=collator)
        # the fixed validation sentences whose reconstructions are read every epoch (evenly spaced)
        validation = self.data["validation"]
        count = min(args.eval_generation_samples, len(validation))
        subset = validation.select(sample_indices(len(validation), count)).remove_columns("length")
        # its own generator: iterating it must not draw from the global RNG (training would then depend on it)
        generation_loader = DataLoader(subset, batch_size=args.per_device_eval_batch_size, collate_fn=collator,
                                       generator=torch.Generator().manual_seed(args.seed))
        self.model, self.optimizer, self.train_loader, self.eval_loader, self.generation_loader = accelerator.prepare(
            self.model, optimizer, train_loader, eval_loader, generation_loader
        )
        self.steps_per_epoch = math.ceil(len(self.train_loader) / args.gradient_accumulation_steps)
        self.max_train_steps = args.max_train_steps or args.num_train_epochs * self.steps_per_epoch
        self.num_epochs = math.ceil(self.max_train_steps / self.steps_per_epoch)
        # Stepped once per optimizer step (not prepared: accelerate would step it once per process). Its state is
        # registered so that `save_state` / `load_state` carry it: a resumed run continues the same curve.
        self.lr_scheduler = get_scheduler(args.lr_scheduler_type, optimizer=self.optimizer,
                                          num_warmup_steps=args.num_warmup_steps,
                                          num_training_steps=self.max_train_steps)
        accelerator.register_for_checkpointing(self.lr_scheduler)
        self.state["lr_schedule"] = self.lr_schedule()
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        logger.info(
            f"{accelerator.num_processes} process(es), {accelerator.distributed_type}, device {accelerator.device}; "
            f"vocabulary {len(self.tokenizer)}; train {len(self.data['train'])} sentences, "
            f"validation {len(self.data['validation'])}; {self.steps_per_epoch} steps/epoch, "
            f"{self.max_train_steps} steps; padding {padding_fraction(lengths, args.per_device_train_batch_size, self.sampler):.1%}"
        )

    def lr_schedule(self) -> dict:
        """The learning-rate schedule as recorded in checkpoints, `train_results.json`, records and the card."""
        args = self.args
        return {"type": args.lr_scheduler_type, "learning_rate": args.learning_rate,
                "num_warmup_steps": args.num_warmup_steps, "num_training_steps": self.max_train_steps}

    # ------------------------------------------------------------------ checkpoints and logs
    def checkpoint(self) -> Path:
        """`accelerator.save_state` into a temporary folder, renamed when complete: a killed run never leaves a
        half-written checkpoint behind."""
        accelerator = self.accelerator
        final = self.output_dir / CHECKPOINT_DIR / f"step_{self.state['completed_steps']}"
        partial = final.with_name(final.name + ".partial")
        if accelerator.is_main_process and partial.exists():
            shutil.rmtree(partial)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(partial))
        if accelerator.is_main_process:
            (partial / STATE_FILE).write_text(json.dumps(self.state, indent=1))
            if final.exists():
                shutil.rmtree(final)
            os.replace(partial, final)
            self.prune_checkpoints()
        accelerator.wait_for_everyone()
        self.last_checkpoint = final
        return final

    def prune_checkpoints(self):
        limit = self.args.checkpoints_total_limit
        if limit is None:
            return
        folders = list_checkpoints(self.output_dir)
        for folder in folders[: max(len(folders) - limit, 0)]:
            shutil.rmtree(folder)

    def resume(self, path: Path):
        has_scheduler_state = (path / "custom_checkpoint_0.pkl").exists()
        if has_scheduler_state:
            self.accelerator.load_state(str(path))
        else:  # written before the lr scheduler was checkpointed (a constant lr): load the rest, then place it
            self.accelerator._custom_objects.remove(self.lr_scheduler)
            try:
                self.accelerator.load_state(str(path))
            finally:
                self.accelerator.register_for_checkpointing(self.lr_scheduler)
        state = json.loads((path / STATE_FILE).read_text())
        renumber = "epochs_counted_from" not in state  # a checkpoint of an earlier version: epochs counted from 0
        self.state = upgrade_state(state)
        if "invocations" not in self.state and self.state["completed_steps"]:  # written before they were recorded
            self.state["invocations"] = [{"command": None, "from_step": 0, "from_epoch": 0, "note": "not recorded: "
                                          "the checkpoint predates the trainer's record of invocations"}]
        previous = self.state.get("invocations", [])
        if previous and "to_step" not in previous[-1]:  # it ended (or was stopped) after this checkpoint
            previous[-1].update(to_step=self.state["completed_steps"], to_epoch=self.state["epoch"])
        if not has_scheduler_state:  # replay the steps it took on the (constant) curve
            for _ in range(self.state["completed_steps"]):
                self.lr_scheduler.step()
        schedule = self.lr_schedule()
        before = self.state.get("lr_schedule", {"type": "constant", "learning_rate": None, "num_warmup_steps": 0,
                                                "num_training_steps": None, "note": "not recorded (constant)"})
        if any(before.get(key) != schedule[key] for key in ("type", "num_warmup_steps", "num_training_steps")) or (
                before.get("learning_rate") not in (None, schedule["learning_rate"])):
            logger.warning(f"The checkpoint's lr schedule was {before}; this run's is {schedule}: the curve continues "
                           f"at step {self.state['completed_steps']} of the new schedule (recorded in invocations).")
        self.state["lr_schedule"] = schedule
        metric = self.args.metric_for_best_model
        if self.state["metric_for_best_model"] != metric:
            logger.warning(f"The checkpoint chose its best epoch by {self.state['metric_for_best_model']}; this run "
                           f"chooses by {metric}: the epochs validated before it are not candidates.")
            self.state.update(metric_for_best_model=metric, best_metric=None, best_epoch=None,
                              epochs_without_improvement=0)
        log = self.output_dir / LOG_FILE
        if self.accelerator.is_main_process and log.exists():  # forget what the interrupted run logged later
            lines = log.read_text(encoding="utf-8").splitlines(keepends=True)[: self.state["log_lines"]]
            if renumber:
                lines = [json.dumps(renumbered_entry(json.loads(line))) + "\n" for line in lines]
            log.write_text("".join(lines), encoding="utf-8")
        self.last_checkpoint = path
        logger.info(f"Resumed from {path} at step {self.state['completed_steps']}, after epoch {self.state['epoch']}"
                    f" (+{self.state['batch_in_epoch']} batches).")

    def log(self, entry: dict):
        if self.args.with_tracking:
            values = {k: v for k, v in entry.items() if isinstance(v, (int, float)) and k != "step"}
            self.accelerator.log({f"{entry['kind']}/{k}": v for k, v in values.items()}, step=entry["step"])
        if self.accelerator.is_main_process:
            with open(self.output_dir / LOG_FILE, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
        self.state["log_lines"] += 1

    # ------------------------------------------------------------------ the loop
    def train_step(self, batch) -> dict:
        args, accelerator = self.args, self.accelerator
        with accelerator.accumulate(self.model):
            # the step drives config.kl_annealing; it is restored on resume, so the schedule continues
            output = self.model(batch["input_ids"], batch["attention_mask"], labels=batch["input_ids"],
                                global_step=self.state["completed_steps"])
            accelerator.backward(output.loss)
            if accelerator.sync_gradients and args.max_grad_norm > 0:
                accelerator.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
            lr = self.optimizer.param_groups[0]["lr"]  # this step's
            self.optimizer.step()
            if accelerator.sync_gradients:
                self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        extra = {name: value for name, value in (("unlikelihood", output.unlikelihood_loss),
                                                 ("repeat_unlikelihood", output.repeat_unlikelihood_loss),
                                                 ("prior_repeat_unlikelihood", output.prior_repeat_unlikelihood_loss))
                 if value is not None}  # the training terms not in the paper that are in use
        terms = [output.loss, output.reconstruction_loss, output.kl_loss, output.kl_last, *extra.values()]
        values = accelerator.reduce(torch.stack(terms).detach(), reduction="mean").tolist()
        loss, reconstruction, kl_holistic, kl_last = values[:4]
        if not all(math.isfinite(value) for value in values):
            last = getattr(self, "last_checkpoint", None)
            raise NonFiniteLossError(
                f"Non-finite loss ({loss}) at step {self.state['completed_steps'] + 1}, epoch {self.state['epoch'] + 1}; "
                f"last good checkpoint: {last if last else 'none (use --checkpointing_steps)'}."
            )
        entry = {"loss": loss, "reconstruction": reconstruction, "kl_holistic": kl_holistic, "kl_last": kl_last,
                 "elbo": reconstruction + kl_last, "lr": lr}
        entry.update(zip(extra, values[4:]))
        return entry

    def evaluate(self, full: bool = True) -> dict:
        """Every validation metric, flat: the valid ones (ELBO-NLL, reconstruction, KL, AU; with `full`, MI and
        IW-NLL with `--eval_iw_samples`), the paper protocol's (`paper_nll`, `paper_kl`, `paper_ppl`), and
        with `--eval_generation_samples` the generated text's (`generation_bleu`, `generation_repeat_rate`,
        `generation_reference_repeat_rate` of the fixed validation sentences' greedy reconstructions; `prior_*`)."""
        args = self.args
        results = evaluate_model(self.model, self.eval_loader, self.accelerator, seed=args.seed,
                                 iw_samples=args.eval_iw_samples if full else 0, mutual_info=full,
                                 description="validation")
        paper = results["paper_protocol"]
        metrics = {"num_sentences": results["num_sentences"], "num_tokens": results["num_tokens"], **results["valid"],
                   "paper_nll": paper["nll"], "paper_kl": paper["kl"], "paper_ppl": paper["ppl"]}
        if args.eval_generation_samples:
            model = self.accelerator.unwrap_model(self.model)
            generated = evaluate_model(self.model, self.generation_loader, self.accelerator, seed=args.seed,
                                       tokenizer=self.tokenizer, description="reconstructions",
                                       paper_protocol=False, mutual_info=False)
            metrics.update(generation_sentences=generated["num_sentences"], generation_bleu=generated["valid"]["bleu"],
                           generation_repeat_rate=generated["valid"]["reconstruction_repeat_rate"],
                           generation_reference_repeat_rate=generated["valid"]["reference_repeat_rate"],
                           **prior_sample_metrics(model, self.tokenizer, args.eval_generation_samples, seed=args.seed))
        return metrics

    def validate(self, **extra) -> dict:
        """Validate after an epoch; export the model if `--metric_for_best_model` is the best so far."""
        start, epoch = time.time(), self.state["epoch"] + 1
        full = epoch % self.args.eval_full_every_epochs == 0 or self.state["completed_steps"] >= self.max_train_steps
        metrics = self.evaluate(full)
        metrics.update(epoch=epoch, step=self.state["completed_steps"], **extra,
                       validation_seconds=round(time.time() - start, 3))
        self.state["validations"].append(metrics)
        self.log({"kind": "validation", **metrics})
        value = metrics[self.args.metric_for_best_model]
        if self.state["best_metric"] is None or value < self.state["best_metric"]:
            self.state.update(best_metric=value, best_epoch=metrics["epoch"], epochs_without_improvement=0)
            self.export()
        else:
            self.state["epochs_without_improvement"] += 1
        return metrics

    def export(self):
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        accelerator.unwrap_model(self.model).save_pretrained(
            self.output_dir, is_main_process=accelerator.is_main_process, save_function=accelerator.save
        )
        if accelerator.is_main_process:
            self.tokenizer.save_pretrained(self.output_dir)

    def run(self) -> dict:
        args, accelerator = self.args, self.accelerator
        start_time = time.time()
        self.setup()
        if args.with_tracking:
            accelerator.init_trackers("hrvae", config={k: v for k, v in asdict(args).items() if v is not None})
        if args.resume_from_checkpoint:
            self.resume(find_checkpoint(args.output_dir, args.resume_from_checkpoint))
        elif accelerator.is_main_process:
            (self.output_dir / LOG_FILE).write_text("")
        # every invocation that trained this run (a resumed one continues the list its checkpoint holds)
        self.state.setdefault("invocations", []).append(
            {"command": self.command, "from_step": self.state["completed_steps"], "from_epoch": self.state["epoch"],
             "device": device_description(), "lr_schedule": self.state["lr_schedule"],
             **({"model_name_or_path": args.model_name_or_path, **self.vocabulary} if args.model_name_or_path else {})})
        if args.model_name_or_path and "lineage" not in self.state:  # resolved now: the folder may be replaced later
            self.state["lineage"] = training_lineage({"initialised_from": args.model_name_or_path}, validations=True)
        progress = tqdm(total=self.max_train_steps, initial=self.state["completed_steps"], desc="train",
                        disable=not accelerator.is_local_main_process)
        stop = self.state["completed_steps"] >= self.max_train_steps
        while not stop and self.state["epoch"] < self.num_epochs:
            epoch_start = time.time()
            self.model.train()
            loader = self.train_loader
            if self.state["batch_in_epoch"]:
                loader = accelerator.skip_first_batches(loader, self.state["batch_in_epoch"])
            # accelerate passes its own iteration count to the sampler when an iteration starts: set it to the epoch
            # (a resumed run iterates a fresh, skipping loader whose count starts at 0).
            loader.set_epoch(self.state["epoch"])
            for batch in loader:
                metrics = self.train_step(batch)
                self.state["batch_in_epoch"] += 1
                if not accelerator.sync_gradients:
                    continue
                self.state["completed_steps"] += 1
                step = self.state["completed_steps"]
                self.log({"kind": "train_step", "step": step, "epoch": self.state["epoch"] + 1, **metrics,
                          "elapsed_s": round(time.time() - start_time, 3)})
                progress.update(1)
                progress.set_postfix(loss=f"{metrics['loss']:.2f}", kl=f"{metrics['kl_holistic']:.2f}")
                if args.checkpointing_steps not in (None, "epoch") and step % int(args.checkpointing_steps) == 0:
                    self.checkpoint()
                for callback in self.callbacks:
                    callback(self, batch)
                if step >= self.max_train_steps:
                    stop = True
                    break
            metrics = self.validate(train_seconds=round(time.time() - epoch_start, 3))
            logger.info(f"epoch {metrics['epoch']}: " + ", ".join(
                f"{k}={v:.4g}" for k, v in metrics.items() if k != "epoch"))
            self.state.update(epoch=self.state["epoch"] + 1, batch_in_epoch=0)
            if args.max_train_minutes is not None and not stop:
                elapsed = time.time() - start_time
                over = elapsed + (time.time() - epoch_start) > 60 * args.max_train_minutes
                # every process takes the same decision (their clocks differ a little)
                if accelerator.gather(torch.tensor([float(over)], device=accelerator.device)).max().item() > 0:
                    logger.info(f"Time budget: {elapsed / 60:.1f} of {args.max_train_minutes} minutes used, "
                                f"another epoch would not end inside it; stopping.")
                    stop = True
            patience = args.early_stopping_patience
            if patience is not None and self.state["epochs_without_improvement"] >= patience:
                logger.info(f"Early stopping: no better validation {args.metric_for_best_model} for {patience} epochs.")
                stop = True
            if args.checkpointing_steps == "epoch":
                self.checkpoint()
        progress.close()
        return self.finish(time.time() - start_time)

    def finish(self, wall_time: float) -> dict:
        accelerator = self.accelerator
        self.state["invocations"][-1].update(to_step=self.state["completed_steps"], to_epoch=self.state["epoch"],
                                             wall_time_s=round(wall_time, 1))
        results = {
            "command": self.command,
            "arguments": asdict(self.args),
            "num_processes": accelerator.num_processes,
            "distributed_type": str(accelerator.distributed_type),
            "device": self.state["invocations"][-1]["device"],  # this invocation's; each lists its own
            "completed_steps": self.state["completed_steps"],
            "epochs": self.state["epoch"],
            "wall_time_s": wall_time,
            "epochs_counted_from": 1,
            "lr_schedule": self.state["lr_schedule"],
            "initialised_from": self.state["invocations"][0].get("model_name_or_path"),
            **({"lineage": self.state["lineage"]} if "lineage" in self.state else {}),
            **({"vocabulary": self.vocabulary} if self.vocabulary else {}),
            "metric_for_best_model": self.state["metric_for_best_model"],
            "best_metric": self.state["best_metric"],
            "best_epoch": self.state["best_epoch"],
            "best_validation": next(
                (v for v in self.state["validations"] if v["epoch"] == self.state["best_epoch"]), None
            ),
            "validations": self.state["validations"],
            "invocations": self.state["invocations"],
        }
        if accelerator.is_main_process:
            (self.output_dir / "train_results.json").write_text(json.dumps(results, indent=1))
            plot_training_curves(self.output_dir / LOG_FILE, self.output_dir / "training_curves.png",
                                 title=f"{Path(self.args.dataset_name or self.args.train_file).name} — {self.args.setting}")
            if self.args.push_to_hub:
                from ..hub import push_folder

                commit = push_folder(self.output_dir, self.args.hub_model_id, private=self.args.hub_private)
                logger.info(f"Pushed to {getattr(commit, 'commit_url', self.args.hub_model_id)}")
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return results


def renumbered_entry(entry: dict) -> dict:
    """A record of an earlier version (epochs counted from 0) with its epoch counted from 1."""
    return {**entry, "epoch": entry["epoch"] + 1} if isinstance(entry.get("epoch"), int) else entry


def upgrade_state(state: dict) -> dict:
    """A checkpoint's trainer state in today's layout: earlier versions counted epochs from 0 in their records
    and chose the best epoch by ELBO-NLL (`best_nll`)."""
    if "epochs_counted_from" in state:
        return state
    state = dict(state)
    state["validations"] = [renumbered_entry(v) for v in state["validations"]]
    if state.get("best_epoch") is not None:
        state["best_epoch"] += 1
    state.update(epochs_counted_from=1, metric_for_best_model="elbo_nll", best_metric=state.pop("best_nll", None))
    return state


def train(args: TrainingArguments, callbacks=(), command: str | None = None) -> dict:
    """Train, export the best model by `args.metric_for_best_model` to `args.output_dir`, return the results.

    `command`: the command line to record in `train_results.json` (and the model card)."""
    return Trainer(args, callbacks, command).run()


__all__ = ["Trainer", "train", "NonFiniteLossError", "renumbered_entry", "upgrade_state", "LOG_FILE"]
