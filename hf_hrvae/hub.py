"""Share a trained HR-VAE on the Hub: the files to upload and a model card generated from the actual run.

The token comes from where `huggingface_hub` always looks (`HF_TOKEN`, `hf auth login`); this module never reads,
prints or writes it.
"""

import hashlib
import json
import shlex
from pathlib import Path

from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData

from .training.data import find_corpus
from .training.lineage import total_epochs, training_lineage
from .errors import EvaluationMismatchError, HubError, ModelNotFoundError, OutputExistsError
from .metrics import BEST_MODEL_NAMES, metrics_of
from .models.hrvae import CODE_FILES  # the model folder's modules, which travel as remote code

REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
OPTIONAL_FILES = ("special_tokens_map.json", "generation_config.json", "training_curves.png", "train_results.json")
TAGS = ["vae", "hr-vae", "text-vae", "variational-autoencoder", "lstm", "text-generation", "hf_hrvae"]
# (field, metric type, readable name) of the model-index, per family of evaluate.py's results (hf_hrvae/metrics.py)
VALID_METRICS = [(m.key, m.card_type, m.label) for m in metrics_of("valid")]
PAPER_METRICS = [(m.key, m.card_type, m.label) for m in metrics_of("paper_protocol")]
CITATION = """@inproceedings{li2019stable,
  title     = {A Stable Variational Autoencoder for Text Modelling},
  author    = {Li, Ruizhe and Li, Xiao and Lin, Chenghua and Collinson, Matthew and Mao, Rui},
  booktitle = {Proceedings of the 12th International Conference on Natural Language Generation},
  year      = {2019}
}"""


def files_to_upload(folder) -> list[str]:
    """The names of the files of `folder` that make up the Hub repository (README.md, the card, comes on top)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelNotFoundError(f"--model_name_or_path {folder}: no such folder; give a folder written by "
                                 "examples/train.py.")
    missing = [name for name in REQUIRED_FILES + CODE_FILES if not (folder / name).exists()]
    if missing:
        raise ModelNotFoundError(
            f"--model_name_or_path {folder} lacks {', '.join(missing)}: give a folder written by examples/train.py "
            "(or save_pretrained of a model and its tokenizer with hf_hrvae imported, which also copies the code "
            "files)."
        )
    config = json.loads((folder / "config.json").read_text())
    if "auto_map" not in config:
        raise ModelNotFoundError(f"--model_name_or_path {folder}: its config.json has no auto_map: save the model "
                                 "with hf_hrvae imported.")
    optional = [name for name in OPTIONAL_FILES if (folder / name).exists()]
    evaluations = sorted(path.name for path in folder.glob("eval_*.json"))
    return list(REQUIRED_FILES + CODE_FILES) + optional + evaluations


WEIGHTS_FILE = "model.safetensors"


def weights_sha256(model_name_or_path) -> str | None:
    """The SHA-256 of the model's `model.safetensors` (what the Hub shows for the file): the identity an evaluation
    records and a model card checks. A Hub id resolves through the local cache; `None` where no file is found."""
    path = Path(model_name_or_path) / WEIGHTS_FILE
    if not path.is_file():
        try:
            from transformers.utils import cached_file

            path = Path(cached_file(str(model_name_or_path), WEIGHTS_FILE))
        except Exception:  # not a folder with weights, nor a cached repository
            return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checked_evaluations(folder: Path) -> dict:
    """The folder's `eval_*.json`, each checked to be an evaluation of the folder's own weights (the SHA-256 of
    `model.safetensors` that `examples/evaluate.py` records): a card never shows another model's numbers."""
    evaluations = {path.name: read_json(path) for path in sorted(folder.glob("eval_*.json"))}
    own = weights_sha256(folder) if evaluations else None
    for name, evaluation in evaluations.items():
        recorded = evaluation.get("model_sha256")
        if recorded != own:
            found = (f"was measured on other weights (sha256 {recorded[:12]}…, this folder's {own[:12]}…)" if recorded
                     else "does not record the weights it measured (model_sha256; written before hf_hrvae checked)")
            raise EvaluationMismatchError(
                f"{folder.name}/{name} {found}: evaluate this folder (python examples/evaluate.py "
                f"--model_name_or_path FOLDER --output_file FOLDER/{name} ...) or remove the file.")
    return evaluations


def read_json(path):
    return json.loads(Path(path).read_text()) if Path(path).exists() else None


def dataset_id(dataset_name: str | None) -> str | None:
    """The Hub id of the training data: a known corpus's id (also for a local copy), else the name if it is one."""
    if not dataset_name:
        return None
    corpus = find_corpus(dataset_name)
    if corpus:
        return corpus.hub_id
    return dataset_name if dataset_name.count("/") == 1 and not Path(dataset_name).exists() else None


def data_name(arguments: dict) -> str:
    """The training data as the card shows it: a corpus or Hub id as given, a local folder or file by its name only
    (the card never shows a path of the machine that trained)."""
    name = arguments.get("dataset_name") or arguments.get("train_file")
    if not name:
        return "unknown"
    return Path(name).name if Path(name).exists() or "/" in name and name.count("/") != 1 else name


def data_line(training: dict, dataset: str | None) -> str:
    """The card's training-data line: a corpus (with its Hub id) or the run's own files, and the vocabulary's source
    (a warm start keeps its model's vocabulary or extends it: `train_results.json`'s `vocabulary`)."""
    arguments = training.get("arguments", {})
    if arguments.get("dataset_name") or not arguments.get("train_file"):
        data = f"`{data_name(arguments)}` (Hub id: {dataset or 'n/a'}), training split"
    else:
        files = [f"`{Path(arguments[key]).name}` ({role})" for key, role in
                 (("train_file", "training"), ("validation_file", "validation")) if arguments.get(key)]
        data = f"the run's own files {' and '.join(files)} (`--train_file`, `--validation_file`)"
    words = training.get("vocabulary") or {}
    if words.get("vocabulary") == "kept":
        vocabulary = "that of the model it started from (`--keep_vocabulary`)"
    elif words.get("vocabulary") == "extended":
        vocabulary = (f"that of the model it started from, extended by the training words seen at least "
                      f"{words.get('min_frequency')} times ({words.get('added_words', 0)} added)")
    else:
        vocabulary = "built from the training split only"
    return f"{data}; vocabulary: {vocabulary}"


def eval_results(evaluations: dict, dataset: str | None) -> list[EvalResult]:
    """The model-index entries: each evaluation under the dataset it read (its own arguments), else `dataset`."""
    results = []
    for evaluation in evaluations.values():
        evaluated = dataset_id((evaluation.get("arguments") or {}).get("dataset_name")) or dataset
        for family, metrics in (("valid", VALID_METRICS), ("paper_protocol", PAPER_METRICS)):
            for field, metric_type, name in metrics:
                value = evaluation[family].get(field)
                if value is None:
                    continue
                if field == "iw_nll":
                    name = name.replace("IW-NLL", f"IW-NLL, k={evaluation['valid']['iw_samples']}")
                results.append(EvalResult(
                    task_type="text-generation", task_name="Sentence modelling (VAE)",
                    dataset_type=evaluated or "custom", dataset_name=evaluated or "custom",
                    dataset_split=evaluation["split"], metric_type=metric_type, metric_name=name,
                    metric_value=round(float(value), 4),
                ))
    return results


def metrics_table(evaluations: dict) -> str:
    if not evaluations:
        return "No evaluation was run for this upload (`examples/evaluate.py` writes `eval_<split>.json`)."
    rows = ["| split | IW-NLL (k) | ELBO-NLL | KL | PPL | MI | AU | BLEU | repeats: reconstructions (references) | "
            "repeats: prior greedy / top-p | paper NLL (KL) | paper PPL |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for evaluation in evaluations.values():
        v, p = evaluation["valid"], evaluation["paper_protocol"]
        number = lambda value, digits=2: "–" if value is None else f"{value:.{digits}f}"  # noqa: E731
        share = lambda key: "–" if v.get(key) is None else f"{100 * v[key]:.1f} %"  # noqa: E731
        rows.append(
            f"| {evaluation['split']} | {number(v.get('iw_nll'))} ({v.get('iw_samples') or '–'}) | "
            f"{number(v['elbo_nll'])} | {number(v['kl'])} | {number(v.get('ppl'))} | {number(v['mutual_info'])} | "
            f"{v['active_units']} | {number(v.get('bleu'), 1)} | {share('reconstruction_repeat_rate')} "
            f"({share('reference_repeat_rate')}) | {share('prior_greedy_repeat_rate')} / "
            f"{share('prior_top_p_repeat_rate')} | {number(p['nll'])} ({number(p['kl'])}) | {number(p['ppl'])} |"
        )
    return "\n".join(rows)


SYSTEMS = {
    "vae-lstm-base": "VAE-LSTM-base (Bowman et al., 2016): KL on the encoder's last step, KL annealing",
    "vae-cnn": "VAE-CNN (Yang et al., 2017): LSTM encoder, dilated CNN decoder",
    "vmf-vae": "vMF-VAE (Xu & Durrett, 2018): von Mises-Fisher posterior with a fixed concentration",
}


def departures(config: dict) -> str:
    """A sentence naming the training choices of the config that the paper does not make (empty when none)."""
    found = []
    if config.get("neighbour_unlikelihood"):
        found.append(f"the unlikelihood of each position's gold neighbours added to the loss at weight "
                     f"{config['neighbour_unlikelihood']:g} (`neighbour_unlikelihood`, against back-to-back repeats)")
    if config.get("repeat_unlikelihood"):
        found.append(f"the unlikelihood of the decoder's own back-to-back repeats added to the loss at weight "
                     f"{config['repeat_unlikelihood']:g} (`repeat_unlikelihood`)")
    if config.get("prior_repeat_unlikelihood"):
        found.append(f"the unlikelihood of repeats in the greedy output of prior samples added to the loss at weight "
                     f"{config['prior_repeat_unlikelihood']:g} (`prior_repeat_unlikelihood`)")
    if config.get("decoder_positions"):
        found.append("learnt position embeddings on the decoder's inputs (`decoder_positions`)")
    if config.get("hidden_size", 256) != 256:
        found.append(f"{config['hidden_size']} hidden units per LSTM layer (the paper: 256)")
    if config.get("dropout", 0.5) != 0.5:
        found.append(f"dropout {config['dropout']:g} in training (the paper: 0.5)")
    return f" Not in the paper: {'; '.join(found)}." if found else ""


def describe(config: dict, setting: str) -> str:
    """What the model is, from its config: HR-VAE or one of the paper's baselines (`config["preset"]`), and what
    it does that the paper does not (`departures`)."""
    return _system(config, setting) + departures(config) + _folded(config)


def _folded(config: dict) -> str:
    size = config.get("decoder_embedding_size")
    if size is None or size == config["embedding_size"]:
        return ""
    if size == 1 and config.get("setting") == "inputless":
        return (" The decoder's input embedding is folded into its first layer (`decoder_embedding_size=1`): it sees "
                "only `<s>` and `<unk>`, so the model computes what it did with fewer weights.")
    return f" The decoder's input embedding has {size} dimensions (`decoder_embedding_size`)."


def _system(config: dict, setting: str) -> str:
    latent = 2 * config["num_layers"] * config["hidden_size"] if config.get("latent_size") is None else config["latent_size"]
    sizes = (f"{config['num_layers']}-layer LSTM encoder ({config['embedding_size']}-d embeddings, "
             f"{config['hidden_size']} hidden units), {latent}-d latent")
    preset = config.get("preset") or "hrvae"
    if config.get("kl_regularisation") == "last_beta":
        return (f"An **ablation of HR-VAE** (Li et al., 2019) trained with the `hf_hrvae` package in the **{setting}** "
                f"setting: {sizes}; the KL of the last step's posterior only (the latent the decoder uses), each "
                "sentence's weighted by 1 / n — HR-VAE's implicit weight on it — without the intermediate posteriors.")
    if preset in SYSTEMS and config.get("kl_regularisation") != "holistic":
        return (f"A **{SYSTEMS[preset]}** — a baseline of the HR-VAE paper (Li et al., 2019), trained with the "
                f"`hf_hrvae` package (preset `{preset}`) in the **{setting}** setting: {sizes}.")
    return (f"An **HR-VAE** (Li et al., 2019, *A Stable Variational Autoencoder for Text Modelling*) trained with the "
            f"`hf_hrvae` package in the **{setting}** setting: a {sizes}; the encoder puts a Gaussian posterior on "
            "the `[h_t; c_t]` of every time step, the KL to N(0, I) is averaged over all steps (Eq. 3, weight 1:1, "
            "no annealing), and the LSTM decoder starts from the last step's latent.")




def stored_dtype(config: dict) -> str:
    """A sentence for weights stored in a dtype other than float32 (`export_checkpoint.py --dtype bfloat16`)."""
    dtype = config.get("dtype") or config.get("torch_dtype") or "float32"
    if dtype == "float32":
        return ""
    return (f" The weights are stored in {dtype} (half the size of float32) and load as float32 unless "
            '`dtype="auto"` is given; the evaluation below is of these stored weights.')


def exported_epoch(training: dict) -> str:
    """Which epoch the folder holds and which validation metric chose it (records before `metric_for_best_model`
    chose by ELBO-NLL and counted epochs from 0)."""
    metric = training.get("metric_for_best_model", "elbo_nll")
    epoch = training.get("best_epoch")
    if epoch is not None and training.get("epochs_counted_from") != 1:
        epoch += 1
    samples = (training.get("best_validation") or {}).get("iw_samples")
    name = BEST_MODEL_NAMES.get(metric, metric) + (f", k = {samples}" if metric == "iw_nll" and samples else "")
    if training.get("exported_by"):  # examples/export_checkpoint.py: an epoch chosen after the run
        return (f"the exported model is epoch {epoch} of {training.get('epochs', '?')}, exported from its checkpoint: "
                f"{training['exported_by']} (the run's own choice, by validation {name} with "
                f"`--metric_for_best_model {metric}`, was epoch {training.get('run_best_epoch')})")
    return (f"the exported model is epoch {epoch} of {training.get('epochs', '?')}, the best by validation {name} "
            f"(`--metric_for_best_model {metric}`)")


def portable(command: str | None) -> str | None:
    """A recorded command (or a record's text) as a card or an upload shows it: the home directory written `~`, the
    current directory's prefix dropped (neither shows a path of the machine that trained)."""
    import os

    if not command:
        return command
    for prefix, shown in ((os.getcwd().rstrip("/") + "/", ""), (os.path.expanduser("~").rstrip("/") + "/", "~/")):
        if prefix not in ("/", "~/"):
            command = command.replace(prefix, shown)
    return command


def command_lines(training: dict, command: str | None) -> str:
    """The card's training command: the one invocation, or every invocation of a resumed run with its epochs."""
    invocations = [i for i in training.get("invocations", []) if i.get("command")]
    if len(invocations) <= 1:
        return (f"- Command ({training.get('num_processes', '?')} process(es), "
                f"{training.get('wall_time_s', 0) / 60:.0f} minutes, {training.get('epochs', '?')} epochs, "
                f"{training.get('completed_steps', '?')} steps):\n\n```bash\n{portable(command) or 'not recorded'}\n```")
    lines = [f"- Commands: {len(invocations)} invocations of the same run, each resuming from the last one's "
             f"checkpoint ({training.get('epochs', '?')} epochs, {training.get('completed_steps', '?')} steps in all):",
             "", "```bash"]
    for invocation in invocations:  # each ends where the next one resumed (the trainer records it on resume)
        end = invocation.get("to_epoch", "?")
        span = f"epoch {end}" if end == invocation["from_epoch"] + 1 else f"epochs {invocation['from_epoch'] + 1}-{end}"
        lines += [f"# {span}", portable(invocation["command"])]
    return "\n".join(lines + ["```"])


def schedule_line(training: dict) -> str:
    """The learning rate of the run, and the model it started from (`--model_name_or_path`)."""
    schedule = training.get("lr_schedule")
    lr = (training.get("arguments") or {}).get("learning_rate")
    if schedule is None:
        text = f"learning rate {lr} (constant; Adam)" if lr is not None else "learning rate not recorded"
    elif schedule["type"] == "constant":  # get_scheduler's constant schedule ignores any warm-up
        text = f"learning rate {schedule['learning_rate']} (constant; Adam)"
    else:
        text = (f"learning rate {schedule['learning_rate']}, `{schedule['type']}` schedule over "
                f"{schedule['num_training_steps']} steps after {schedule['num_warmup_steps']} warm-up steps (Adam)")
    start = training.get("initialised_from")
    if not start:
        return text
    text += f"; started from the weights of `{Path(start).name}` (a fresh optimizer)"
    lineage = training_lineage(training)  # the folders it came from, where this machine still has them
    total = total_epochs(training.get("epochs", 0), lineage)
    if lineage and total is not None:
        chain = " from ".join(f"`{Path(step['folder']).name}` ({step['epochs']} epochs)" for step in lineage)
        text += f", trained before as {chain}: {total} epochs in all"
    return text


def validation_summary(validation: dict) -> str:
    """The exported epoch's validation numbers that were computed, in nats per sentence."""
    labels = [("elbo_nll", "ELBO-NLL"), ("iw_nll", "IW-NLL"), ("reconstruction", "reconstruction"),
              ("kl", "KL of the used z"), ("active_units", "active units"), ("mutual_info", "MI"),
              ("paper_nll", "paper-protocol NLL")]
    parts = [f"{label} {validation[key]:.2f}" if isinstance(validation[key], float) else f"{label} {validation[key]}"
             for key, label in labels if validation.get(key) is not None]
    return ", ".join(parts) if parts else "not recorded"


CARD_NOTES_FILE = "card_notes.md"


def notes_section(folder: Path) -> str:
    """`card_notes.md` of the folder, hand-written (links, what else was measured), as a section of the card."""
    notes = folder / CARD_NOTES_FILE
    return f"## More about this model\n\n{notes.read_text(encoding='utf-8').strip()}\n\n" if notes.exists() else ""


def build_model_card(folder, repo_id: str | None = None, revision: str | None = None,
                     license: str = "apache-2.0") -> ModelCard:
    """The card of `folder`, from its config, `train_results.json` and `eval_*.json` (checked to be evaluations of
    its weights; nothing hand-written but `card_notes.md`). Named `repo_id`, or the folder's name without one."""
    folder = Path(folder)
    repo_id = repo_id or folder.name
    config = json.loads((folder / "config.json").read_text())
    training = read_json(folder / "train_results.json") or {}
    arguments = training.get("arguments", {})
    evaluations = checked_evaluations(folder)
    dataset = dataset_id(arguments.get("dataset_name"))
    data = ModelCardData(
        library_name="transformers", pipeline_tag="text-generation", tags=TAGS, language="en", license=license,
        datasets=[dataset] if dataset else None, model_name=repo_id, eval_results=eval_results(evaluations, dataset),
    )
    revision_arg = f', revision="{revision}"' if revision else ""
    setting = config.get("setting", "standard")
    command = training.get("command") or (
        "python examples/train.py " + " ".join(f"--{k} {shlex.quote(str(v))}" for k, v in arguments.items()
                                               if v not in (None, False)) if arguments else None
    )
    best = training.get("best_validation") or {}
    body = f"""
# {repo_id.split('/')[-1]}

{describe(config, setting)}
Vocabulary: {config['vocab_size']} word-level tokens.{stored_dtype(config)}

## Load it

```python
# with the hf_hrvae package installed: importing it registers the Auto classes
import hf_hrvae
from transformers import AutoModel, AutoTokenizer
model = AutoModel.from_pretrained("{repo_id}"{revision_arg})
tokenizer = AutoTokenizer.from_pretrained("{repo_id}"{revision_arg})

# without it: the code files of this repository are used (pin the revision you have reviewed)
model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True{revision_arg})
tokenizer = AutoTokenizer.from_pretrained("{repo_id}", trust_remote_code=True{revision_arg})
```

## Use it

```python
batch = tokenizer(["blue spice is a coffee shop in city centre ."], return_tensors="pt", padding=True)
ids = model.generate(**batch, max_new_tokens=40)                       # reconstruct (posterior mean)
ids = model.generate(num_return_sequences=5, do_sample=True, top_p=0.9, max_new_tokens=40)  # prior samples
a, b = (tokenizer(s, return_tensors="pt")["input_ids"] for s in ["the eagle is a pub .", "giraffe is cheap ."])
ids = model.interpolate(a, b, steps=5, method="slerp", max_new_tokens=40)  # between two posterior means
print(tokenizer.batch_decode(ids, skip_special_tokens=True))
mu, logvar = model.encode(**batch)                                     # the posterior of the used latent
```

## Training

- Data: {data_line(training, dataset)}; {exported_epoch(training)}; {schedule_line(training)}.
{command_lines(training, command)}

Validation of the exported epoch: {validation_summary(best)}.

![Training curves: reconstruction loss and KL](training_curves.png)

## Evaluation

{metrics_table(evaluations)}

How each number was measured (`examples/evaluate.py`, see `docs/evaluation.md` of hf_hrvae): all NLL and KL values
are nats per sentence, summed over the predicted tokens (words and `</s>`). IW-NLL is the importance-weighted bound
with k samples of the posterior of the used latent; ELBO-NLL = reconstruction (one posterior sample) + KL of the used
latent; PPL = exp(total IW-NLL / predicted tokens); MI is I_q(x; z) over the whole split; AU counts latent
dimensions with Cov_x E_q[z_d] > 0.01; BLEU compares greedy reconstructions from the posterior mean with the inputs;
*repeats* is the share of texts with a token repeated back-to-back ("a a pub"), of the reconstructions, of the
references themselves and of prior samples decoded greedily and with top-p 0.9.
The *paper protocol* columns reproduce what the authors' code computes (posterior mean, time-averaged KL, n + 2
tokens per sentence) for comparison with Table 2 of the paper: **they are not bounds** and come out lower.

{notes_section(folder)}## Limitations

- A sentence VAE for short texts of the training domain ({dataset or 'its training data'}); word-level vocabulary,
  lower-cased and punctuation-split unless the data was pre-tokenised; unknown words become `<unk>`.
- The time-averaged KL of Eq. 3 is not the KL of the latent the decoder uses; only the valid metrics above bound
  −log p(x).
- Prior samples can be ungrammatical; reconstructions of long sentences drift.

## Citation

```bibtex
{CITATION}
```
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def upload_source(folder: Path, name: str) -> str | bytes:
    """What an upload (or `export_folder`) holds as `name`: the file's path, or for the records (`train_results.json`,
    `eval_*.json`) their text with the training machine's paths made `portable`."""
    path = folder / name
    if name == "train_results.json" or (name.startswith("eval_") and name.endswith(".json")):
        return portable(path.read_text(encoding="utf-8")).encode("utf-8")
    return str(path)


def push_folder(folder, repo_id: str, private: bool = False, revision: str | None = None,
                commit_message: str | None = None, license: str = "apache-2.0", api: HfApi | None = None):
    """Create the repository (if needed) and upload the folder's files plus the generated card in one commit."""
    folder = Path(folder)
    names = files_to_upload(folder)
    card = build_model_card(folder, repo_id, revision=revision, license=license)
    api = api or HfApi()  # the token: HF_TOKEN or `hf auth login`, resolved by huggingface_hub
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=upload_source(folder, name)) for name in names]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode("utf-8")))
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        return api.create_commit(
            repo_id=repo_id, operations=operations, revision=revision,
            commit_message=commit_message or f"Upload HR-VAE ({len(operations)} files) with hf_hrvae",
        )
    except Exception as error:  # offline, no token, no permission, an invalid id: huggingface_hub's many types
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise HubError(f"--repo_id {repo_id}: the upload failed ({type(error).__name__}: {first}). Check the id "
                       "(user/name), the token (HF_TOKEN or `hf auth login`) and the network (HF_HUB_OFFLINE "
                       "unset); --local_dir FOLDER writes the same files without the Hub.") from error


def export_folder(folder, target, repo_id: str | None = None, revision: str | None = None,
                  license: str = "apache-2.0") -> list[str]:
    """Write into `target` exactly what `push_folder` would upload: the listed files of `folder` and the generated
    card as `README.md` (the Hub repository as a local folder, e.g. one shipped in `models/`), the card named
    `repo_id` or, without one, `target`'s folder name. Returns the names. `target` must be empty or absent: nothing
    of an earlier export is left behind."""
    import shutil

    folder, target = Path(folder), Path(target)
    names = files_to_upload(folder)
    card = build_model_card(folder, repo_id or target.resolve().name, revision=revision, license=license)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise OutputExistsError(f"--local_dir {target} is not empty (or not a folder): export into a new "
                                "folder (nothing of an earlier export must be left behind).")
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = upload_source(folder, name)
        if isinstance(source, bytes):
            (target / name).write_bytes(source)
        else:
            shutil.copyfile(source, target / name)
    (target / "README.md").write_text(str(card), encoding="utf-8")
    return names + ["README.md"]


__all__ = ["files_to_upload", "weights_sha256", "checked_evaluations", "build_model_card", "push_folder", "export_folder"]
