"""HR-VAE configuration."""

from transformers import PretrainedConfig

SETTINGS = ("standard", "inputless")
KL_REDUCTIONS = ("mean", "sum")
KL_REGULARISATIONS = ("holistic", "last", "last_beta")
KL_ANNEALING = ("none", "linear", "sigmoid", "cyclical")
DECODER_TYPES = ("lstm", "cnn")
LATENT_DISTRIBUTIONS = ("gaussian", "vmf")
# Every option with a closed set of values, declared once: the config's checks and the trainer's flags read it.
OPTION_CHOICES = {
    "setting": SETTINGS, "kl_reduction": KL_REDUCTIONS, "kl_regularisation": KL_REGULARISATIONS,
    "kl_annealing": KL_ANNEALING, "decoder_type": DECODER_TYPES, "latent_distribution": LATENT_DISTRIBUTIONS,
}

# The paper's systems as configurations of the one model (see docs/baselines.md). The baselines use a 32-d latent
# mapped to the decoder's state, as their reference implementations use small latents. VAE-CNN clips its KL term
# (the paper's Figure 2 discussion): max(5 nats, batch-mean KL), 5 being about the KL Table 2 gives it on E2E.
PRESETS = {
    "hrvae": {},
    "vae-lstm-base": {"kl_regularisation": "last", "kl_annealing": "sigmoid", "latent_size": 32},
    "vae-cnn": {"kl_regularisation": "last", "decoder_type": "cnn", "kl_annealing": "linear", "latent_size": 32,
                "free_bits": 5.0},
    "vmf-vae": {"kl_regularisation": "last", "latent_distribution": "vmf", "vmf_kappa": 80.0, "latent_size": 32},
}


class HRVAEConfig(PretrainedConfig):
    r"""
    Configuration of an [`HRVAEModel`], the holistic-regularisation VAE of Li et al. (2019).

    Args:
        vocab_size (`int`, defaults to 10000):
            Number of entries in the vocabulary (special tokens included); `len(tokenizer)`.
        embedding_size (`int`, defaults to 512):
            Word-embedding size of the encoder and of the decoder.
        decoder_embedding_size (`int`, *optional*):
            Word-embedding size of the decoder's input, if not `embedding_size` (the default). The inputless decoder
            sees only `<s>` and `<unk>`, so 1 is enough: [`fold_inputless_embedding`] rewrites a trained inputless
            model so, the same function with fewer weights.
        hidden_size (`int`, defaults to 256):
            Size of the LSTM hidden and cell states, encoder and decoder.
        num_layers (`int`, defaults to 2):
            LSTM layers of the encoder and of the decoder.
        dropout (`float`, defaults to 0.5):
            Dropout on the word embeddings and between LSTM layers (as the authors' code).
        latent_size (`int`, *optional*):
            `None` (default) is the authors' wiring: the latent is `[h; c]` of every encoder layer,
            `2 * num_layers * hidden_size` values (1024 for the paper's sizes), and *is* the decoder's initial
            state. An integer gives a latent of that size, mapped to the decoder's state by a linear layer.
        setting (`str`, defaults to `"standard"`):
            `"standard"`: the decoder sees the previous gold word; `"inputless"`: it sees `<s>` and then only
            `<unk>`, so that everything must come from the latent.
        word_dropout (`float`, *optional*):
            Probability of replacing a decoder input word by `<unk>` while training (Bowman et al., 2016).
            Defaults to 0 for `"standard"` and must be 1 for `"inputless"` (there it applies at every time,
            generation included). A value in (0, 1) with `"standard"` is Bowman's word dropout, training only.
        kl_weight (`float`, defaults to 1.0):
            Weight of the KL term; the paper uses 1:1 with the reconstruction.
        kl_reduction (`str`, defaults to `"mean"`):
            How the per-time-step KL terms of Eq. 3 are combined over a sentence's real time steps: `"mean"`
            (Eq. 3) or `"sum"` (the sum keeps the objective a valid bound).
        max_decode_length (`int`, defaults to 128):
            Longest sequence, `<s>` and `</s>` included, that `forward` accepts (longer inputs are truncated
            with a warning) and that `generate` produces by default.
        kl_regularisation (`str`, defaults to `"holistic"`):
            `"holistic"`: a posterior and a KL term at every encoder step (HR-VAE); `"last"`: only at the last step
            (the usual VAE, the baselines); `"last_beta"`: only the last step's KL, each sentence's weighted by
            1 / n, n its real steps (an ablation: HR-VAE's implicit beta on the latent the decoder uses, without
            the intermediate posteriors; needs `kl_reduction="mean"`).
        kl_annealing (`str`, defaults to `"none"`):
            Weight schedule of the KL term over optimizer steps: `"none"`, `"linear"` (0 to 1 over
            `kl_anneal_steps`), `"sigmoid"` (1 / (1 + exp(-kl_anneal_k (step - kl_anneal_x0))), Sentence-VAE's
            k = 0.0025, x0 = 2500) or `"cyclical"` (Fu et al. 2019: cycles of `kl_cycle_length` steps, rising over
            the first `kl_cycle_ratio` of each). Driven by the `global_step` the trainer passes to `forward`.
        kl_anneal_steps (`int`, defaults to 10000):
            Steps of the `"linear"` schedule from 0 to 1.
        kl_anneal_k (`float`, defaults to 0.0025):
            Slope of the `"sigmoid"` schedule.
        kl_anneal_x0 (`int`, defaults to 2500):
            Midpoint of the `"sigmoid"` schedule, in optimizer steps.
        kl_cycle_length (`int`, defaults to 10000):
            Steps per cycle of the `"cyclical"` schedule.
        kl_cycle_ratio (`float`, defaults to 0.5):
            Share of each cycle over which the `"cyclical"` weight rises from 0 to 1.
        decoder_type (`str`, defaults to `"lstm"`):
            `"lstm"` or `"cnn"` (VAE-CNN: causal dilated convolutions, `cnn_dilations`, `cnn_kernel_size`, residual
            connections, z concatenated to every input).
        cnn_kernel_size (`int`, defaults to 3):
            Kernel size of the CNN decoder's causal convolutions.
        cnn_dilations (`list[int]`, *optional*):
            Dilations of the CNN decoder's layers, one layer each; defaults to `[1, 2, 4]`.
        latent_distribution (`str`, defaults to `"gaussian"`):
            `"gaussian"` (N(0, I) prior) or `"vmf"` (vMF-VAE: posterior vMF(mu / |mu|, vmf_kappa) with a fixed
            `vmf_kappa`, uniform prior on the sphere; needs `latent_size`).
        vmf_kappa (`float`, defaults to 80.0):
            The fixed concentration of the vMF posterior.
        free_bits (`float`, defaults to 0):
            Free bits (Kingma et al. 2016; Li et al. 2019): the training KL is max(free_bits, batch-mean KL), or
            with `free_bits_per_dim` the sum over dimensions of max(free_bits, batch-mean KL_d). Also serves as
            VAE-CNN's KL clipping. Reported KLs are never clipped.
        free_bits_per_dim (`bool`, defaults to False):
            Apply `free_bits` to each latent dimension's KL instead of the whole KL.
        bn_vae (`bool`, defaults to False):
            BN-VAE (Zhu et al. 2020): batch normalisation of mu with a fixed scale `bn_gamma` and a learnt shift.
        bn_gamma (`float`, defaults to 0.5):
            BN-VAE's fixed scale; a larger one keeps a larger expected KL.
        decoder_positions (`bool`, defaults to False):
            Add a learnt embedding of the position (0 for `<s>`, 1, 2, ...) to the LSTM decoder's input embedding: a
            variant, not in the paper, that tells an inputless decoder where it is in the sentence (it sees no
            words). The positions start at zero, so a model given them (`examples/train.py --model_name_or_path
            ... --decoder_positions`) starts as the same function. Positions past `max_decode_length - 1` share
            the last one's embedding.
        neighbour_unlikelihood (`float`, defaults to 0):
            Weight of a training term not in the paper: the token-level unlikelihood (Welleck et al. 2020) of each
            position's gold neighbours, the previous and the next word where they differ from its own, which an
            inputless decoder otherwise repeats back-to-back ("a a pub"). 0: the paper's objective. Reported
            reconstructions, KLs and bounds never include it.
        repeat_unlikelihood (`float`, defaults to 0):
            Weight of another training term not in the paper: the unlikelihood of the word the decoder's own top
            tokens repeat at two neighbouring positions, where it is not the gold word (for an inputless decoder,
            exactly the repeats of its greedy output; `losses_hrvae.repeat_unlikelihood`). 0: the paper's
            objective. Reported reconstructions, KLs and bounds never include it.
        prior_repeat_unlikelihood (`float`, defaults to 0):
            Weight of a third such term, inputless setting only: the unlikelihood of each repeated word in the greedy
            output of a z drawn from the prior, one per 4 sentences of a batch (a decoder pass on a quarter of the
            batch): every copy but the first, as no gold sentence says which one is right.
        preset (`str`, *optional*):
            The name given to [`HRVAEConfig.from_preset`], kept for the record.
        pad_token_id, unk_token_id, bos_token_id, eos_token_id (`int`, defaults to 0, 1, 2, 3):
            Ids of `<pad>`, `<unk>`, `<s>` and `</s>`, as [`build_tokenizer`] assigns them.
    """

    model_type = "hrvae"

    vocab_size: int = 10000
    embedding_size: int = 512
    decoder_embedding_size: int | None = None
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.5
    latent_size: int | None = None
    setting: str = "standard"
    word_dropout: float | None = None
    kl_weight: float = 1.0
    kl_reduction: str = "mean"
    max_decode_length: int = 128
    kl_regularisation: str = "holistic"
    kl_annealing: str = "none"
    kl_anneal_steps: int = 10000
    kl_anneal_k: float = 0.0025
    kl_anneal_x0: int = 2500
    kl_cycle_length: int = 10000
    kl_cycle_ratio: float = 0.5
    decoder_type: str = "lstm"
    cnn_kernel_size: int = 3
    cnn_dilations: list[int] | None = None
    latent_distribution: str = "gaussian"
    vmf_kappa: float = 80.0
    free_bits: float = 0.0
    free_bits_per_dim: bool = False
    bn_vae: bool = False
    bn_gamma: float = 0.5
    decoder_positions: bool = False
    neighbour_unlikelihood: float = 0.0
    repeat_unlikelihood: float = 0.0
    prior_repeat_unlikelihood: float = 0.0
    preset: str | None = None
    pad_token_id: int | None = 0
    unk_token_id: int | None = 1
    bos_token_id: int | None = 2
    eos_token_id: int | None = 3
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        if self.word_dropout is None:
            self.word_dropout = 1.0 if self.setting == "inputless" else 0.0
        if self.cnn_dilations is None:
            self.cnn_dilations = [1, 2, 4]
        super().__post_init__(**kwargs)
        self.validate_hrvae()

    @property
    def state_size(self) -> int:
        """Size of the decoder's initial state `[h; c]` over all layers: `2 * num_layers * hidden_size`."""
        return 2 * self.num_layers * self.hidden_size

    @property
    def decoder_embedding_dim(self) -> int:
        """Size of the decoder's input embedding: `decoder_embedding_size`, or `embedding_size` when unset."""
        return self.embedding_size if self.decoder_embedding_size is None else self.decoder_embedding_size

    @property
    def latent_dim(self) -> int:
        """Size of the latent z: `latent_size`, or `state_size` with the authors' wiring."""
        return self.state_size if self.latent_size is None else self.latent_size

    def validate_hrvae(self) -> None:
        """Raise a `ValueError` naming the field and its allowed values for any invalid setting."""

        def positive_int(name, allow_none=False):
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                allowed = "a positive integer" + (" or None" if allow_none else "")
                raise ValueError(f"HRVAEConfig.{name} must be {allowed}, got {value!r}.")

        for name in ("vocab_size", "embedding_size", "hidden_size", "num_layers", "max_decode_length"):
            positive_int(name)
        positive_int("latent_size", allow_none=True)
        positive_int("decoder_embedding_size", allow_none=True)
        for name, allowed in OPTION_CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"HRVAEConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}.")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"HRVAEConfig.dropout must be a float in [0, 1), got {self.dropout!r}.")
        if not isinstance(self.word_dropout, (int, float)) or not 0.0 <= self.word_dropout <= 1.0:
            raise ValueError(f"HRVAEConfig.word_dropout must be a float in [0, 1], got {self.word_dropout!r}.")
        if self.setting == "inputless" and self.word_dropout != 1.0:
            raise ValueError(
                f"HRVAEConfig.word_dropout must be 1.0 (or left unset) with setting='inputless', got "
                f"{self.word_dropout!r}; use setting='standard' for Bowman's word dropout in [0, 1)."
            )
        if self.setting == "standard" and self.word_dropout == 1.0:
            raise ValueError(
                "HRVAEConfig.word_dropout=1.0 hides every input word: use setting='inputless' instead, or a "
                "value in [0, 1) with setting='standard'."
            )
        if self.kl_regularisation == "last_beta" and self.kl_reduction != "mean":
            raise ValueError("HRVAEConfig.kl_regularisation='last_beta' weights the last step's KL by 1 / n, what "
                             "Eq. 3's mean gives it; with kl_reduction='sum' use kl_regularisation='last'.")
        for name in ("kl_anneal_steps", "kl_cycle_length", "cnn_kernel_size"):
            positive_int(name)
        if not 0 < self.kl_cycle_ratio <= 1:
            raise ValueError(f"HRVAEConfig.kl_cycle_ratio must be in (0, 1], got {self.kl_cycle_ratio!r}.")
        if not self.cnn_dilations or any(not isinstance(d, int) or d < 1 for d in self.cnn_dilations):
            raise ValueError(f"HRVAEConfig.cnn_dilations must be a list of positive integers, got {self.cnn_dilations!r}.")
        if not isinstance(self.vmf_kappa, (int, float)) or self.vmf_kappa <= 0:
            raise ValueError(f"HRVAEConfig.vmf_kappa must be a number > 0, got {self.vmf_kappa!r}.")
        if not isinstance(self.free_bits, (int, float)) or self.free_bits < 0:
            raise ValueError(f"HRVAEConfig.free_bits must be a number >= 0, got {self.free_bits!r}.")
        if not isinstance(self.bn_gamma, (int, float)) or self.bn_gamma <= 0:
            raise ValueError(f"HRVAEConfig.bn_gamma must be a number > 0, got {self.bn_gamma!r}.")
        if self.latent_distribution == "vmf":
            if self.latent_size is None or self.latent_size < 2:
                raise ValueError("HRVAEConfig.latent_distribution='vmf' needs latent_size >= 2 (e.g. 32): the "
                                 "authors' wiring makes z the decoder's state, which a unit vector cannot be.")
            if self.free_bits or self.bn_vae:
                raise ValueError("free_bits and bn_vae act on a Gaussian KL; the vMF KL is a constant of vmf_kappa.")
        if not isinstance(self.decoder_positions, bool):
            raise ValueError(f"HRVAEConfig.decoder_positions must be True or False, got {self.decoder_positions!r}.")
        if self.decoder_positions and self.decoder_type != "lstm":
            raise ValueError("HRVAEConfig.decoder_positions is built for the LSTM decoder (decoder_type='lstm') "
                             "only, not for the CNN decoder.")
        for name in ("neighbour_unlikelihood", "repeat_unlikelihood", "prior_repeat_unlikelihood"):
            weight = getattr(self, name)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
                raise ValueError(f"HRVAEConfig.{name} must be a number >= 0, got {weight!r}.")
        if self.prior_repeat_unlikelihood and self.word_dropout < 1.0:
            raise ValueError("HRVAEConfig.prior_repeat_unlikelihood is for the inputless setting: only there are the "
                             "top tokens of a teacher-forced pass the greedy output.")
        if not isinstance(self.kl_weight, (int, float)) or self.kl_weight < 0:
            raise ValueError(f"HRVAEConfig.kl_weight must be a number >= 0, got {self.kl_weight!r}.")
        ids = {}
        for name in ("pad_token_id", "unk_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < self.vocab_size:
                raise ValueError(
                    f"HRVAEConfig.{name} must be an integer in [0, vocab_size={self.vocab_size}), got {value!r}."
                )
            if value in ids:
                raise ValueError(f"HRVAEConfig.{name} and HRVAEConfig.{ids[value]} are both {value}; they must differ.")
            ids[value] = name

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "HRVAEConfig":
        """The configuration of one of the paper's systems: `"hrvae"`, `"vae-lstm-base"`, `"vae-cnn"`, `"vmf-vae"`,
        with `overrides` on top (e.g. `vocab_size=len(tokenizer), setting="inputless"`)."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {list(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides, "preset": name})

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        model_type = config_dict.get("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise ValueError(
                f"This configuration is of model_type={model_type!r}, not {cls.model_type!r}: it cannot build an "
                f"HR-VAE. Load it with AutoConfig / the matching model class instead."
            )
        return super().from_dict(config_dict, **kwargs)


__all__ = ["HRVAEConfig"]
