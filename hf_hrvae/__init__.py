"""hf_hrvae: HR-VAE (Li et al., 2019) as a Hugging Face model. Importing it registers the Auto classes."""

from transformers import AutoConfig, AutoModel

from .models.hrvae.configuration_hrvae import HRVAEConfig
from .models.hrvae.generation_hrvae import HRVAEGenerateOutput
from .models.hrvae.modeling_hrvae import HRVAEModel, HRVAEOutput, HRVAEPreTrainedModel
from .tokenization_hrvae import build_tokenizer

__version__ = "0.1.0"

AutoConfig.register(HRVAEConfig.model_type, HRVAEConfig, exist_ok=True)
AutoModel.register(HRVAEConfig, HRVAEModel, exist_ok=True)
# save_pretrained then writes `auto_map` and copies the code, so the folder loads with trust_remote_code=True.
HRVAEConfig.register_for_auto_class()
HRVAEModel.register_for_auto_class("AutoModel")

__all__ = [
    "HRVAEConfig",
    "HRVAEModel",
    "HRVAEOutput",
    "HRVAEPreTrainedModel",
    "HRVAEGenerateOutput",
    "build_tokenizer",
]
