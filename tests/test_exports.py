import hf_hrvae


def test_public_exports_are_pinned():
    assert sorted(hf_hrvae.__all__) == sorted(
        [
            "HRVAEConfig",
            "HRVAEModel",
            "HRVAEOutput",
            "HRVAEPreTrainedModel",
            "HRVAEGenerateOutput",
            "build_tokenizer",
        ]
    )
    for name in hf_hrvae.__all__:
        assert getattr(hf_hrvae, name) is not None


def test_import_registers_auto_classes():
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model("hrvae", vocab_size=20)
    assert isinstance(config, hf_hrvae.HRVAEConfig)
    assert isinstance(AutoModel.from_config(config), hf_hrvae.HRVAEModel)
