"""The shipped models (models/*): each loads both ways, its latent is in use, its card tells the truth, its code is
the package's."""

import json

import pytest
import torch
import yaml
from transformers import AutoModel, AutoTokenizer

import hf_hrvae  # noqa: F401  (registers the Auto classes)
from conftest import REPO_ROOT
from hf_hrvae.evaluation import corpus_bleu
from hf_hrvae.hub import weights_sha256
from hf_hrvae.text_quality import repeat_rate
from test_save_load import load_without_hf_hrvae

# Every 200th sentence of E2E's validation split (../shared/data/e2e_nlg), as written there (the test needs no data).
VALIDATION_SENTENCES = [
    "There is a place in the city centre, Alimentum, that is not family-friendly.",
    "Aromi is a coffee shop providing Chinese food It is located in the riverside. Its customer rating is high.",
    "Browns Cambridge is a family friendly coffee shop that offers Chinese food. It has a 5 out of 5 customer rating and is located near Crowne Plaza Hotel in the riverside area.",
    "Clowns in riverside, near Clare Hall has a customer rating of 3 out of 5. It is a coffee shop and also has Chinese food.",
    "The Cocum has a price range less than £20 and is also family friendly. It's a Chinese coffee shop with a low customer rating.",
    "Cotto is a low priced coffee shop offering Chinese cuisine. They are located in the city centre, near The Portland Arms with a customer rating of 5 out of 5.",
    "Cotto is a moderate priced English restaurant located at the city centre near The Portland Arms with a customer rating 3 out of 5.",
    "Fitzbillies is a coffee shop that provides Chinese food. It is not kid friendly and has a customer rating of 3 out of 5. It is located in the city centre and is moderately priced.",
    "In the riverside area a coffee shop named Fitzbillies has reasonably priced English food. This restaurant is not family-friendly and has a low rating.",
    "Taste of Cambridge is a coffee shop that is child friendly and serves Chinese food. It is located in riverside near the Crowne Plaza Hotel.",
    "Place which is called The Cambridge Blue is a coffee shop, which in children are friendly and customers think that, it is a average place. It is located near Burger King.",
    "The Cricketers is a 3 star coffee shop serving British food.  It is family friendly and is located near The Portland Arms.",
    "The Eagle is a child friendly, riverside restaurant near Café Brazil with a high customer rating.",
    "The Eagle is a coffee shop with Chinese food in the city centre near Burger King. It is not family friendly, has a moderate price range and a customer rating of 1 out of 5.",
    "The Eagle is a highly priced English coffee shop that has earned an average rating from its customers. Although not kid friendly it is located in the riverside area near Burger King.",
    "There is a coffee shop named The Golden Palace that provides Chinese food at moderate prices. The Golden Palace is located in the city centre and have a 1 out of 5 customer rating.",
    "The Mill is a coffee shop. It is located in riverside near The Sorrento.",
    "The Phoenix is located in the city centre and has a low customer rating.",
    "Located in riverside, The Punter has a low customer rating and is not family-friendly.",
    "The Punter is a high priced English coffee shop located near Café Sicilia. It is family friendly but has a poor customer rating.",
    "A highly rated restaurant is The Wrestlers, it is family friendly.",
    "The Wrestlers, The Sorrento are very children Friendly but have a low customer rating",
    "The Wrestlers is a non kids friendly coffee shop, that has moderate price ranged English food. It is located near Raja Indian Cuisine in the city center.",
    "Wildwood is a coffee shop that serves English food. They have high customer ratings and cheap prices. They are in the city near the Ranch.",
]
# Every 150th sentence of PTB's validation split (../shared/data/ptb_text_only), as written there.
PTB_VALIDATION_SENTENCES = [
    "consumers may want to move their telephones a little closer to the tv set",
    "paintings are just part of the picture",
    "the cement producer said the payment was made from excess cash flow",
    "it 's a nice feeling to know that things stabilized said mr. sherman the <unk> <unk> of a discount department store",
    "the loyal <unk> has come full circle",
    "testimony is expected to continue until early december",
    "phil <unk> a software engineer was an eager customer",
    "the market upheaval apparently has n't triggered any cash crunch yet",
    "since late N for example it has put off a rule dealing with deferred income taxes because of the continuing "
    "controversy over the issue",
    "dr. novello an expert on pediatric kidney diseases is deputy director of the national institute of child health "
    "and human development",
]
# What each shipped model promises: its setting, and a BLEU floor and a ceiling on the share of reconstructions with
# a token repeated back-to-back, on its corpus's sentences above (greedy, posterior mean), each with a margin from
# what it measured, so that a worse model replacing it fails; the k of its test IW-NLL.
SHIPPED_MODELS = {
    "hrvae-e2e-inputless": {"setting": "inputless", "bleu_floor": 52.0, "repeat_ceiling": 0.3,
                            "sentences": VALIDATION_SENTENCES, "iw_samples": 500},
    # measured: 58.0 and 6 in 24, 2026-12-08 (the previous models: 56.5 and 6 in 24; 55.9 and 5; 54.4 and 6; 50.1 and
    # 11; on all 4,672 validation sentences this model repeats less than the one before: 21.6 % against 22.7 %)
    "hrvae-e2e": {"setting": "standard", "bleu_floor": 29.0, "repeat_ceiling": 0.1, "sentences": VALIDATION_SENTENCES,
                  "iw_samples": 500},  # measured: 37.2 and 0 %, 2026-12-04 (the previous model: BLEU 15.9)
    "hrvae-ptb": {"setting": "standard", "bleu_floor": 4.0, "repeat_ceiling": 0.3, "sentences": PTB_VALIDATION_SENTENCES,
                  "iw_samples": 500},  # measured: 5.5 and 1 in 10, 2026-12-06 (the previous two models: BLEU 5.0, 1.7)
}
SHIPPED = REPO_ROOT / "models" / "hrvae-e2e-inputless"  # the README's quick-start model


def test_every_model_folder_is_listed_here():
    assert sorted(p.name for p in (REPO_ROOT / "models").iterdir() if p.is_dir()) == sorted(SHIPPED_MODELS)


@pytest.fixture(scope="module", params=sorted(SHIPPED_MODELS))
def shipped(request):
    folder = REPO_ROOT / "models" / request.param
    return folder, AutoModel.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def test_the_folder_is_what_an_upload_holds_and_fits_the_limit(shipped):
    from hf_hrvae.hub import files_to_upload

    folder = shipped[0]
    names = sorted(path.name for path in folder.iterdir())
    assert names == sorted(files_to_upload(folder) + ["README.md"])
    assert {"train_results.json", "eval_test.json", "training_curves.png"} <= set(names)
    assert sum(path.stat().st_size for path in folder.iterdir()) <= 40 * 2**20


@pytest.mark.parametrize("folder", sorted(p.name for p in (REPO_ROOT / "models").iterdir() if p.is_dir()))
def test_every_shipped_models_code_is_the_packages(folder):
    """The remote code a Hub user runs (trust_remote_code) is the code this package tests; refresh the copies
    (weights untouched) with `cp hf_hrvae/models/hrvae/*_hrvae.py models/<name>/` whenever a model file changes."""
    from hf_hrvae.models.hrvae import CODE_FILES, MODEL_DIR

    assert len(CODE_FILES) == 7 and "modeling_hrvae.py" in CODE_FILES
    stale = [name for name in CODE_FILES
             if (REPO_ROOT / "models" / folder / name).read_bytes() != (MODEL_DIR / name).read_bytes()]
    assert not stale, f"models/{folder}: {stale} differ from hf_hrvae/models/hrvae/"


def test_loads_with_auto_model_after_importing_hf_hrvae(shipped):
    folder, model, tokenizer = shipped
    assert type(model).__name__ == "HRVAEModel" and not model.training
    assert model.config.setting == SHIPPED_MODELS[folder.name]["setting"]
    assert model.config.vocab_size == len(tokenizer)


def test_loads_with_trust_remote_code_where_hf_hrvae_cannot_be_imported(shipped, tmp_path):
    folder, model, tokenizer = shipped
    remote = load_without_hf_hrvae(folder, tmp_path)
    batch = tokenizer(["blue spice is a coffee shop ."], return_tensors="pt")
    torch.testing.assert_close(remote["logits"], model(**batch).logits, atol=1e-5, rtol=0)
    assert torch.equal(remote["ids"], model.generate(**batch, max_new_tokens=6))


def test_reconstructs_validation_sentences_recognisably(shipped):
    folder, model, tokenizer = shipped
    batch = tokenizer(SHIPPED_MODELS[folder.name]["sentences"], return_tensors="pt", padding=True)
    ids = model.generate(**batch, max_new_tokens=60)
    reconstructions = [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    references = [text.strip() for text in tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True)]
    assert corpus_bleu(reconstructions, references) >= SHIPPED_MODELS[folder.name]["bleu_floor"]
    assert repeat_rate(reconstructions) <= SHIPPED_MODELS[folder.name]["repeat_ceiling"]
    assert len(set(reconstructions)) == len(reconstructions)  # distinct inputs, distinct reconstructions


def test_the_cards_numbers_are_its_evaluation(shipped):
    folder = shipped[0]
    card = (folder / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    recorded = {m["name"]: m["value"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    evaluation = json.loads((folder / "eval_test.json").read_text())
    assert evaluation["model_sha256"] == weights_sha256(folder)  # an evaluation of these very weights
    valid, paper = evaluation["valid"], evaluation["paper_protocol"]
    k = valid["iw_samples"]
    assert recorded[f"IW-NLL, k={k} (importance-weighted bound, nats/sentence)"] == round(valid["iw_nll"], 4)
    assert recorded["ELBO-NLL (upper bound, nats/sentence)"] == round(valid["elbo_nll"], 4)
    assert recorded["KL of the used latent (nats/sentence)"] == round(valid["kl"], 4)
    assert recorded["Active units"] == valid["active_units"]
    assert recorded["BLEU of greedy reconstructions"] == round(valid["bleu"], 4)
    assert recorded["NLL, paper protocol (comparison only, not a bound)"] == round(paper["nll"], 4)
    assert meta["model-index"][0]["name"] == folder.name and "your-name" not in card
    training = json.loads((folder / "train_results.json").read_text())
    assert f"the exported model is epoch {training['best_epoch']} of {training['epochs']}" in card
    assert training["metric_for_best_model"] in card
    assert "(../../docs/results.md" in card and (folder / "../../docs/results.md").exists()  # the card links them


def test_its_latent_is_in_use_on_the_test_split(shipped):
    valid = json.loads((shipped[0] / "eval_test.json").read_text())["valid"]
    assert valid["kl"] >= 3 and valid["active_units"] >= 5 and valid["mutual_info"] > 0.5  # issue 23's floor
    assert valid["iw_samples"] == SHIPPED_MODELS[shipped[0].name]["iw_samples"]  # the k its docs state
