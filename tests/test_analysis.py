"""The latent probes of hf_hrvae/paper/analysis.py: MR parsing, the linear probe, PCA, the probe run end to end."""

import csv
import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT
from hf_hrvae.paper.analysis import (
    ABSENT,
    LinearProbe,
    attribute_labels,
    encode_posteriors,
    parse_meaning_representation,
    pca_2d,
    pick_interpolation_ends,
    probe_attributes,
)


def test_meaning_representations_are_parsed_with_absent_attributes_as_a_class():
    mr = "name[The Eagle], eatType[coffee shop], customer rating[5 out of 5], near[Burger King]"
    assert parse_meaning_representation(mr) == {"name": "The Eagle", "eatType": "coffee shop",
                                                "customer rating": "5 out of 5", "near": "Burger King"}
    assert attribute_labels([mr, "name[Aromi]"], "eatType") == ["coffee shop", ABSENT]
    with pytest.raises(ValueError, match="Not an E2E meaning representation"):
        parse_meaning_representation("just words")


def test_the_probe_reads_a_linearly_encoded_attribute_and_not_noise():
    generator = torch.Generator().manual_seed(0)
    labels = [["pub", "coffee shop", "restaurant"][i % 3] for i in range(600)]
    centres = {"pub": 0.0, "coffee shop": 2.0, "restaurant": 4.0}
    features = torch.randn(600, 16, generator=generator)
    features[:, 3] += torch.tensor([centres[label] for label in labels]) * 3  # one direction carries it
    train, test = slice(0, 400), slice(400, 600)
    probe = LinearProbe().fit(features[train], labels[train])
    assert probe.classes == ["coffee shop", "pub", "restaurant"]
    predicted = probe.predict(features[test])
    assert sum(p == t for p, t in zip(predicted, labels[test])) / 200 > 0.97
    noise = LinearProbe().fit(torch.randn(400, 16, generator=generator), labels[train])
    hits = sum(p == t for p, t in zip(noise.predict(torch.randn(200, 16, generator=generator)), labels[test]))
    assert hits / 200 < 0.5  # three balanced classes: about 1/3 by chance


def test_probe_table_has_accuracy_beside_the_majority_baseline():
    mrs = [f"name[A], eatType[{'pub' if i % 4 else 'restaurant'}]" + (", area[riverside]" if i % 2 else "")
           for i in range(80)]
    latents = torch.randn(80, 4, generator=torch.Generator().manual_seed(1))
    results, probes = probe_attributes(latents[:60], mrs[:60], latents[60:], mrs[60:], attributes=("eatType", "area"))
    assert results["eatType"]["majority_class"] == "pub" and results["eatType"]["majority_baseline"] == 0.75
    assert results["eatType"]["test_majority_share"] == 0.75
    assert results["area"]["num_classes"] == 2 and set(probes) == {"eatType", "area"}
    assert 0 <= results["area"]["accuracy"] <= 1


def test_pca_finds_the_direction_of_largest_variance():
    generator = torch.Generator().manual_seed(2)
    latents = torch.randn(500, 6, generator=generator) * torch.tensor([0.1, 5.0, 0.1, 0.1, 2.0, 0.1])
    points = pca_2d(latents)
    assert points.shape == (500, 2)
    centred = latents[:, 1] - latents[:, 1].mean()
    torch.testing.assert_close(points[:, 0].abs(), centred.abs(), atol=0.6, rtol=0.1)  # PC 1 is dimension 1
    assert points[:, 0].var() > points[:, 1].var() > 1.0


def test_interpolation_ends_differ_in_every_shown_attribute():
    mrs = ["name[A], eatType[pub], area[riverside]", "name[B], eatType[pub], area[city centre], familyFriendly[no]",
           "name[C], eatType[restaurant], area[city centre], familyFriendly[yes]"]
    assert pick_interpolation_ends(mrs) == (0, 2)


def test_posteriors_come_back_in_the_order_of_the_texts(make_model, tokenizer, sentences):
    model = make_model().eval()
    mu, logvar = encode_posteriors(model, tokenizer, sentences[:7], batch_size=3)
    for i, text in enumerate(sentences[:7]):
        alone, _ = model.encode(**tokenizer([text], return_tensors="pt"))
        torch.testing.assert_close(mu[i], alone[0], atol=1e-5, rtol=1e-5)
    assert logvar.shape == mu.shape


def test_probe_script_end_to_end(make_model, tokenizer, sentences, tmp_path):
    model = make_model().eval()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    data = tmp_path / "e2e_nlg"
    data.mkdir()
    for split, count in (("train", 60), ("validation", 10), ("test", 30)):
        with open(data / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["meaning_representation", "human_reference"])
            for row in range(count):
                eat = ["pub", "coffee shop", "restaurant"][row % 3]
                area = ["riverside", "city centre"][row % 2]
                family = ["yes", "no"][(row // 2) % 2]
                writer.writerow([f"name[N{row % 5}], eatType[{eat}], area[{area}], familyFriendly[{family}]",
                                 sentences[row % len(sentences)]])
    out = tmp_path / "probes.json"
    result = subprocess.run([sys.executable, REPO_ROOT / "examples" / "probe_latent.py", "--model_name_or_path",
                             tmp_path / "model", "--dataset_name", data, "--output_file", out, "--figure",
                             tmp_path / "latents.png", "--interpolation_steps", "4"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| eatType | 3 |" in result.stdout
    saved = json.loads(out.read_text())
    assert saved["num_train"] == 60 and saved["num_test"] == 30
    assert set(saved["probes"]) == {"name", "eatType", "food", "priceRange", "customer rating", "area",
                                    "familyFriendly", "near"}
    assert saved["probes"]["food"] == {"accuracy": 1.0, "majority_baseline": 1.0, "majority_class": ABSENT,
                                       "test_majority_share": 1.0, "num_classes": 1}
    assert set(saved["probes_on_samples"]) == set(saved["probes"])
    assert len(saved["interpolation"]["points"]) == 4 and "eatType" in saved["interpolation"]["points"][0]
    assert (tmp_path / "latents.png").read_bytes()[:4] == b"\x89PNG"
