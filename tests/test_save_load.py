import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoTokenizer, GPT2Config, GPT2Model

from hf_hrvae import HRVAEConfig, HRVAEModel
from hf_hrvae.hub import CODE_FILES


@pytest.mark.parametrize("overrides", [{}, {"setting": "inputless", "latent_size": 6}])
def test_round_trip_gives_identical_tensors_and_logits(make_model, tokenizer, batch, tmp_path, overrides):
    model = make_model(**overrides).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, HRVAEModel) and not loaded.training
    original, reloaded = model.state_dict(), loaded.state_dict()
    assert original.keys() == reloaded.keys()
    for name in original:  # transformers 5 renames some keys on load: every tensor must come back
        assert torch.equal(original[name], reloaded[name]), name
    assert set(load_file(tmp_path / "model.safetensors")) == set(original)
    # Every tensor is equal (above); the logits only to rounding: on the CPU, MKL's matrix products round
    # differently with the memory alignment of the weights, and loaded weights need not be aligned like new ones.
    torch.testing.assert_close(model(**batch).logits, loaded(**batch).logits, atol=1e-6, rtol=0)
    assert AutoTokenizer.from_pretrained(tmp_path).get_vocab() == tokenizer.get_vocab()


def test_saved_folder_carries_auto_map_and_code(make_model, tmp_path):
    make_model().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_hrvae.HRVAEConfig",
        "AutoModel": "modeling_hrvae.HRVAEModel",
    }
    for name in CODE_FILES:  # the modeling file and every sibling it imports
        assert (tmp_path / name).exists(), name


REMOTE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["hf_hrvae"] = None  # hf_hrvae cannot be imported in this process
    import torch
    from transformers import AutoModel, AutoTokenizer
    try:
        import hf_hrvae
        raise SystemExit("hf_hrvae was importable")
    except ImportError:
        pass
    path = sys.argv[1]
    model = AutoModel.from_pretrained(path, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    batch = tokenizer(["blue spice is a coffee shop ."], return_tensors="pt")
    torch.save({"logits": model(**batch).logits, "ids": model.generate(**batch, max_new_tokens=6)}, sys.argv[2])
    """
)


def load_without_hf_hrvae(model_dir, tmp_path) -> dict:
    """Run REMOTE_SCRIPT on `model_dir` in a process that cannot import hf_hrvae: its logits and generated ids."""
    script = tmp_path / "remote.py"
    script.write_text(REMOTE_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(model_dir), str(tmp_path / "remote.pt")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(tmp_path / "remote.pt")


def test_trust_remote_code_loads_without_hf_hrvae(make_model, tokenizer, tmp_path):
    model = make_model().eval()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    remote = load_without_hf_hrvae(tmp_path / "model", tmp_path)
    batch = tokenizer(["blue spice is a coffee shop ."], return_tensors="pt")
    torch.testing.assert_close(remote["logits"], model(**batch).logits, atol=1e-6, rtol=0)  # see above
    assert torch.equal(remote["ids"], model.generate(**batch, max_new_tokens=6))


def test_other_model_type_is_refused_with_a_clear_error(tmp_path):
    GPT2Model(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=20)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model_type='gpt2'"):
        HRVAEModel.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="HRVAEModel needs an HRVAEConfig"):
        HRVAEModel(GPT2Config())
    assert isinstance(AutoConfig.from_pretrained(tmp_path), GPT2Config)  # the Auto path is unaffected


def test_config_edited_after_creation_is_validated_when_building_the_model():
    config = HRVAEConfig(vocab_size=20)
    config.setting = "bidirectional"
    with pytest.raises(ValueError, match="HRVAEConfig.setting must be one of"):
        HRVAEModel(config)
