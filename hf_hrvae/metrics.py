"""The metrics, declared once: what each is called in tables and cards, whether lower is better, whether it bounds
-log p(x), and where it is computed. Evaluation results, validation records, model cards and `--metric_for_best_model`
read their names and labels from here."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str  # the field in evaluation results (`valid` / `paper_protocol`) and validation records
    short: str  # a table's column
    label: str  # a model card's metric name
    card_type: str  # the model-index metric type
    lower_is_better: bool | None  # None: neither (a count, a rate of the references)
    bound: bool = False  # an upper bound on -log p(x) (nats per sentence)
    family: str = "valid"  # "valid" or "paper_protocol" (the authors' protocol: comparison only, never a bound)
    validation: str | None = None  # the validation record's name, where it differs (paper_nll, ...)
    choose: str | None = None  # what it means as --metric_for_best_model (None: not a choice)


METRICS = (
    Metric("elbo_nll", "ELBO-NLL", "ELBO-NLL (upper bound, nats/sentence)", "nll", True, bound=True,
           choose="validation ELBO-NLL (a bound on the NLL)"),
    Metric("iw_nll", "IW-NLL", "IW-NLL (importance-weighted bound, nats/sentence)", "nll", True, bound=True,
           choose="validation importance-weighted NLL (a bound, tighter than the ELBO)"),
    Metric("ppl", "PPL (IW)", "PPL from IW-NLL (per predicted token)", "perplexity", True),
    Metric("kl", "KL of the used z", "KL of the used latent (nats/sentence)", "kl", None),
    Metric("mutual_info", "MI", "Mutual information I_q(x; z)", "mutual_information", None),
    Metric("active_units", "AU", "Active units", "active_units", None),
    Metric("bleu", "BLEU", "BLEU of greedy reconstructions", "bleu", False),
    Metric("reconstruction_repeat_rate", "repeats (reconstructions)",
           "Greedy reconstructions with a token repeated back-to-back", "repeat_rate", True),
    Metric("reference_repeat_rate", "repeats (references)", "References with a token repeated back-to-back",
           "repeat_rate", None),
    Metric("prior_greedy_repeat_rate", "repeats (prior, greedy)",
           "Prior samples (greedy) with a token repeated back-to-back", "repeat_rate", True),
    Metric("prior_top_p_repeat_rate", "repeats (prior, top-p)",
           "Prior samples (top-p 0.9) with a token repeated back-to-back", "repeat_rate", True),
    Metric("prior_greedy_distinct_2", "distinct-2 (prior, greedy)", "Distinct-2 of prior samples (greedy)",
           "distinct_2", False),
    Metric("prior_top_p_distinct_2", "distinct-2 (prior, top-p)", "Distinct-2 of prior samples (top-p 0.9)",
           "distinct_2", False),
    Metric("nll", "paper-protocol NLL (not a bound)", "NLL, paper protocol (comparison only, not a bound)", "nll",
           True, family="paper_protocol", validation="paper_nll",
           choose="validation NLL of the authors' protocol (posterior-mean decoding + time-averaged KL: not a bound)"),
    Metric("kl", "paper-protocol KL", "KL, paper protocol (time-averaged; not the used latent's)", "kl", None,
           family="paper_protocol", validation="paper_kl"),
    Metric("ppl", "paper-protocol PPL", "PPL, paper protocol (comparison only, not a bound)", "perplexity", True,
           family="paper_protocol", validation="paper_ppl"),
    Metric("reconstruction", "reconstruction loss (not a bound)", "Reconstruction loss -log p(x | z) (not a bound)",
           "nll", True, family="validation",
           choose="validation reconstruction loss -log p(x | z), z ~ q(z | x) (not a bound: the KL is left out)"),
)


def metrics_of(family: str) -> list[Metric]:
    """The metrics an evaluation reports under `family` ("valid", "paper_protocol")."""
    return [metric for metric in METRICS if metric.family == family]


def validation_name(metric: Metric) -> str:
    return metric.validation or metric.key


# --metric_for_best_model: its choices (validation record names) and what each one is; all lower-is-better
BEST_MODEL_METRICS = {validation_name(m): m.choose for m in METRICS if m.choose}
assert all(m.lower_is_better for m in METRICS if m.choose)
BEST_MODEL_NAMES = {validation_name(m): m.short for m in METRICS if m.choose}

__all__ = ["Metric", "METRICS", "metrics_of", "validation_name", "BEST_MODEL_METRICS", "BEST_MODEL_NAMES"]
