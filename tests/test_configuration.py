import json

import pytest
from transformers import GPT2Config

from hf_hrvae import HRVAEConfig


def test_defaults_are_the_papers():
    config = HRVAEConfig()
    assert (config.embedding_size, config.hidden_size, config.num_layers, config.dropout) == (512, 256, 2, 0.5)
    assert config.latent_size is None and config.latent_dim == 1024  # [h; c] of 2 layers of 256
    assert config.setting == "standard" and config.word_dropout == 0.0
    assert config.kl_weight == 1.0 and config.kl_reduction == "mean"
    assert (config.pad_token_id, config.unk_token_id, config.bos_token_id, config.eos_token_id) == (0, 1, 2, 3)


def test_inputless_sets_word_dropout_to_one():
    assert HRVAEConfig(setting="inputless").word_dropout == 1.0
    assert HRVAEConfig(setting="standard", word_dropout=0.25).word_dropout == 0.25


def test_latent_size_integer():
    assert HRVAEConfig(latent_size=32).latent_dim == 32


def test_round_trip_keeps_every_field(tmp_path):
    config = HRVAEConfig(vocab_size=77, setting="inputless", latent_size=16, kl_reduction="sum", max_decode_length=50)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "hrvae" and saved["max_decode_length"] == 50
    loaded = HRVAEConfig.from_pretrained(tmp_path)
    for key in ("vocab_size", "setting", "word_dropout", "latent_size", "kl_reduction", "max_decode_length"):
        assert getattr(loaded, key) == getattr(config, key)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(setting="bidirectional"), "HRVAEConfig.setting must be one of ('standard', 'inputless')"),
        (dict(kl_reduction="max"), "HRVAEConfig.kl_reduction must be one of ('mean', 'sum')"),
        (dict(dropout=1.0), "HRVAEConfig.dropout must be a float in [0, 1)"),
        (dict(word_dropout=1.5), "HRVAEConfig.word_dropout must be a float in [0, 1]"),
        (dict(setting="inputless", word_dropout=0.5), "word_dropout must be 1.0"),
        (dict(setting="standard", word_dropout=1.0), "use setting='inputless'"),
        (dict(latent_size=0), "HRVAEConfig.latent_size must be a positive integer or None"),
        (dict(decoder_embedding_size=0), "HRVAEConfig.decoder_embedding_size must be a positive integer or None"),
        (dict(hidden_size=2.5), "HRVAEConfig.hidden_size must be a positive integer"),
        (dict(num_layers=0), "HRVAEConfig.num_layers must be a positive integer"),
        (dict(kl_weight=-1), "HRVAEConfig.kl_weight must be a number >= 0"),
        (dict(vocab_size=3), "HRVAEConfig.eos_token_id must be an integer in [0, vocab_size=3)"),
        (dict(unk_token_id=0), "are both 0"),
    ],
)
def test_invalid_values_name_field_and_allowed_values(overrides, message):
    with pytest.raises(ValueError) as error:
        HRVAEConfig(**overrides)
    assert message in str(error.value)


def test_config_of_another_model_type_is_refused(tmp_path):
    GPT2Config(n_layer=1).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model_type='gpt2'"):
        HRVAEConfig.from_pretrained(tmp_path)


def test_no_field_is_named_like_a_generation_parameter():
    from transformers import GenerationConfig

    generation_names = set(GenerationConfig().to_dict()) - {"bos_token_id", "eos_token_id", "pad_token_id"}
    own_fields = set(HRVAEConfig.__annotations__)
    assert "max_decode_length" in own_fields
    assert not generation_names & own_fields


def test_every_model_option_is_one_flag_declared_by_the_config():
    """The trainer's model flags are HRVAEConfig's fields: same names, the config's choices, its docstring as help;
    a field added to the config becomes a flag without touching the trainer."""
    import dataclasses

    from hf_hrvae.models.hrvae.configuration_hrvae import OPTION_CHOICES
    from hf_hrvae.training.arguments import MODEL_OPTIONS, WARM_START_OPTIONS, TrainingArguments, _config_help

    flags = {f.name: f for f in dataclasses.fields(TrainingArguments)}
    not_options = {"vocab_size", "setting", "max_decode_length", "preset", "pad_token_id", "unk_token_id",
                   "bos_token_id", "eos_token_id", "tie_word_embeddings"}
    assert set(MODEL_OPTIONS) == set(HRVAEConfig.__annotations__) - not_options
    help_texts = _config_help()
    for name in MODEL_OPTIONS:
        assert flags[name].default is None, name  # unset: the preset's value
        assert flags[name].metadata.get("choices") == (list(OPTION_CHOICES[name]) if name in OPTION_CHOICES else None)
        assert flags[name].metadata["help"].startswith(help_texts[name]), name  # every option documented
        # the options --model_name_or_path applies (rather than reading them from the folder) say so
        assert ("with --model_name_or_path:" in flags[name].metadata["help"]) == (name in WARM_START_OPTIONS), name
    assert "widens the saved model" in flags["hidden_size"].metadata["help"]
    assert flags["setting"].metadata["choices"] == list(OPTION_CHOICES["setting"])
    for name, allowed in OPTION_CHOICES.items():  # the config refuses what the flags refuse
        with pytest.raises(ValueError, match=f"HRVAEConfig.{name} must be one of"):
            HRVAEConfig(**{name: "no-such-value"})


def test_a_warmup_the_constant_schedule_ignores_is_warned_about(caplog):
    from hf_hrvae.training import TrainingArguments

    with caplog.at_level("WARNING", logger="hf_hrvae.training"):
        TrainingArguments(output_dir="x", dataset_name="e2e", num_warmup_steps=300)
    assert "no effect with --lr_scheduler_type constant" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hf_hrvae.training"):
        TrainingArguments(output_dir="x", dataset_name="e2e", num_warmup_steps=300, lr_scheduler_type="cosine")
    assert "no effect" not in caplog.text
