"""The CUDA path equals the CPU path. Skipped without a GPU (CI has none); run on a GPU machine with
`python -m pytest tests/test_cuda.py`."""

import pytest
import torch

from hf_hrvae import HRVAEModel
from hf_hrvae.models.hrvae.configuration_hrvae import PRESETS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def no_tf32():
    """TF32 would round the GPU's products to 10 mantissa bits; the equalities below are about the code paths."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def cpu_and_cuda(make_model, **overrides):
    cpu = make_model(**overrides).eval()
    gpu = HRVAEModel(cpu.config).eval()
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu.cuda()


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("setting", ["standard", "inputless"])
def test_cuda_loss_logits_and_gradients_equal_cpu(make_model, batch, preset, setting):
    # training mode (cuDNN's LSTM backward needs it) without randomness: no dropout, z = the posterior mean
    cpu, gpu = cpu_and_cuda(make_model, setting=setting, dropout=0.0, **PRESETS[preset])
    outputs = {}
    for name, model in (("cpu", cpu), ("cuda", gpu)):
        model.train()
        inputs = {key: value.to(model.device) for key, value in batch.items()}
        output = model(**inputs, labels=inputs["input_ids"], sample_latent=False)
        output.loss.backward()
        outputs[name] = (output.loss.item(), output.logits.cpu(), {n: p.grad.cpu() for n, p in model.named_parameters()
                                                                  if p.grad is not None})
    assert outputs["cuda"][0] == pytest.approx(outputs["cpu"][0], rel=1e-5)
    torch.testing.assert_close(outputs["cuda"][1], outputs["cpu"][1], rtol=1e-4, atol=1e-4)
    assert outputs["cuda"][2].keys() == outputs["cpu"][2].keys()
    for name, grad in outputs["cpu"][2].items():
        torch.testing.assert_close(outputs["cuda"][2][name], grad, rtol=1e-3, atol=1e-5, msg=name)


def test_cuda_greedy_reconstructions_equal_cpu(make_model, batch):
    cpu, gpu = cpu_and_cuda(make_model, setting="inputless")
    expected = cpu.generate(**batch, max_new_tokens=12)
    got = gpu.generate(**{key: value.cuda() for key, value in batch.items()}, max_new_tokens=12)
    assert torch.equal(got.cpu(), expected)


def test_cuda_bf16_autocast_loss_within_one_percent_of_fp32(make_model, batch):
    _, gpu = cpu_and_cuda(make_model, setting="inputless", dropout=0.0)
    inputs = {key: value.cuda() for key, value in batch.items()}
    fp32 = gpu(**inputs, labels=inputs["input_ids"]).loss.item()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        output = gpu(**inputs, labels=inputs["input_ids"])
    assert output.loss.item() == pytest.approx(fp32, rel=0.01)
    assert output.loss.item() != fp32  # autocast did run
    assert output.kl_loss.item() >= 0


def test_cuda_evaluation_equals_cpu(make_model, tokenizer, sentences):
    from accelerate import Accelerator
    from datasets import Dataset
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    from hf_hrvae.evaluation import evaluate_model

    cpu, gpu = cpu_and_cuda(make_model, setting="inputless")
    data = Dataset.from_dict({"input_ids": tokenizer(sentences[:12])["input_ids"], "index": list(range(12))})
    loader = DataLoader(data, batch_size=5, collate_fn=DataCollatorWithPadding(tokenizer))
    accelerator = Accelerator()
    results = {}
    for name, model in (("cpu", cpu), ("cuda", gpu)):
        batches = [{key: value.to(model.device) for key, value in b.items()} for b in loader]
        results[name] = evaluate_model(model, batches, accelerator, iw_samples=20)["valid"]
    for key in ("reconstruction", "kl", "elbo_nll", "iw_nll", "mutual_info"):
        assert results["cuda"][key] == pytest.approx(results["cpu"][key], rel=1e-4, abs=1e-5), key


@pytest.mark.parametrize("preset", ["hrvae", "vae-lstm-base", "vae-cnn"])
def test_cuda_training_step_synchronises_once(make_model, batch, preset):
    # What tests/test_modeling.py counts on the CPU (count_host_syncs), seen by CUDA itself: the input checks' one
    # read-back is the only point where the host waits for the device in a training step.
    import warnings

    _, gpu = cpu_and_cuda(make_model, **PRESETS[preset])
    gpu.train()
    optimizer = torch.optim.Adam(gpu.parameters(), fused=True)
    inputs = {key: value.cuda() for key, value in batch.items()}
    for step in range(2):  # the first step may set things up (cuDNN plans, the optimizer's state)
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                output = gpu(**inputs, labels=inputs["input_ids"], global_step=step)
                output.loss.backward()
                torch.nn.utils.clip_grad_norm_(gpu.parameters(), 5.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            finally:
                torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 1, syncs
