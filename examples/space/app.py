"""A Gradio Space for a shipped HR-VAE: reconstruct a sentence, sample from the prior, interpolate between two.

    pip install -e ".[demo]"
    python examples/space/app.py --model models/hrvae-e2e-inputless     # http://127.0.0.1:7860

The folder is a Space as it stands (`requirements.txt` beside this file; the model loads with
`trust_remote_code=True`, so the Space needs only torch, transformers and gradio). Each tab is also an API
endpoint: `/reconstruct`, `/sample`, `/interpolate` (`gradio_client.Client(url).predict(..., api_name=...)`);
each takes a last, optional `no_back_to_back_repeats` (the page's checkbox, off by default: plain decoding).
Bad input gets a message in the page, never a traceback; every generation is bounded.
"""

import argparse
import json
import os
import unicodedata
from pathlib import Path

import gradio as gr
import torch
from transformers import AutoModel, AutoTokenizer

MAX_CHARACTERS = 1000  # longer input is refused before it is tokenised
MAX_NEW_TOKENS = 60  # every decode stops here
MAX_SAMPLES, MAX_STEPS = 20, 10
UNKNOWN_WARNING = 0.5  # share of words outside the vocabulary above which the page warns
PROBES_FILE = "probes.safetensors"  # written by `examples/probe_latent.py --save_probes` (optional)
HERE = Path(__file__).resolve().parent


def default_model() -> str:
    """$HRVAE_MODEL (a Hub id or folder: set it as a Space variable), else a `model/` folder uploaded beside this
    file, else the repository's shipped model (running from a checkout)."""
    for candidate in (os.environ.get("HRVAE_MODEL"), HERE / "model", HERE.parents[1] / "models" / "hrvae-e2e-inputless"):
        if candidate and (not isinstance(candidate, Path) or candidate.exists()):
            return str(candidate)
    raise SystemExit("No model: set HRVAE_MODEL to a Hub id (your-name/hrvae-e2e-inputless) or a model folder.")


class Demo:
    """The model behind the page: each method takes what the page sends and returns what it shows."""

    def __init__(self, model_name_or_path: str, probes_path: str | None = None):
        self.model = AutoModel.from_pretrained(model_name_or_path, trust_remote_code=True).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, trust_remote_code=True)
        self.max_words = self.model.config.max_decode_length - 2  # <s> and </s>
        self.probes = load_probes(probes_path) if probes_path and Path(probes_path).exists() else None

    # ------------------------------------------------------------------------------------------- input checks
    def clean(self, text) -> tuple[str | None, list[str]]:
        """`(sentence or None, notes)`: control characters dropped, length bounded, unknown words counted."""
        if not isinstance(text, str) or not text.strip():
            return None, ["Type a sentence first."]
        if len(text) > MAX_CHARACTERS:
            return None, [f"That is {len(text):,} characters; the model reads one sentence (at most "
                          f"{MAX_CHARACTERS:,} characters here). Try a shorter one."]
        notes = []
        cleaned = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
        if cleaned != text:
            notes.append("Control characters were replaced by spaces.")
        cleaned = " ".join(cleaned.split())
        if not cleaned:
            return None, notes + ["Nothing is left to read."]
        words = self.tokenizer(cleaned)["input_ids"][1:-1]
        if len(words) > self.max_words:
            notes.append(f"{len(words)} words: only the first {self.max_words} are read.")
        unknown = sum(w == self.model.config.unk_token_id for w in words) / max(len(words), 1)
        if unknown > UNKNOWN_WARNING:
            notes.append(f"{unknown:.0%} of the words are not in the model's vocabulary (it knows "
                         f"{len(self.tokenizer):,} words of English restaurant descriptions): expect little "
                         "of your sentence to survive.")
        return cleaned, notes

    def encode(self, sentence: str) -> dict:
        batch = self.tokenizer([sentence], return_tensors="pt", truncation=True, max_length=self.max_words + 2)
        return {key: batch[key] for key in ("input_ids", "attention_mask")}

    def decode(self, ids) -> list[str]:
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    # ------------------------------------------------------------------------------------------- the three tabs
    @torch.no_grad()
    def reconstruct(self, text, no_back_to_back_repeats=False):
        """`(reconstruction, what the probes read, notes)`: greedy from the posterior mean, as `model.generate`;
        `no_back_to_back_repeats`: the decoding trick of `generate(no_back_to_back_repeats=True)`."""
        sentence, notes = self.clean(text)
        if sentence is None:
            return "", {}, " ".join(notes)
        batch = self.encode(sentence)
        mu, logvar = self.model.encode(batch["input_ids"], batch["attention_mask"])  # once, for both outputs
        latent = self.model.posterior_mode(mu, logvar)  # what generate(**batch) decodes
        reconstruction = self.decode(self.model.generate(latent=latent, max_new_tokens=MAX_NEW_TOKENS,
                                                         no_back_to_back_repeats=bool(no_back_to_back_repeats)))[0]
        if self.probes is None:
            read = {"(probes)": "not loaded: run examples/probe_latent.py --save_probes"}
        else:
            read = predict_probes(self.probes, mu)
        return reconstruction, read, " ".join(notes)

    @torch.no_grad()
    def sample(self, count, seed, method, no_back_to_back_repeats=False):
        """`(samples, one a line; notes)`: z ~ N(0, I), decoded greedily or with top-p 0.9."""
        try:
            count, seed = int(count), int(seed)
        except (TypeError, ValueError, OverflowError):
            return "", "The number of samples and the seed must be whole numbers."
        if not 1 <= count <= MAX_SAMPLES:
            return "", f"Ask for 1 to {MAX_SAMPLES} samples."
        if method not in ("greedy", "top-p"):
            return "", "The decoding is greedy or top-p."
        torch.manual_seed(seed)
        ids = self.model.generate(num_return_sequences=count, max_new_tokens=MAX_NEW_TOKENS,
                                  do_sample=method == "top-p", top_p=0.9 if method == "top-p" else None,
                                  no_back_to_back_repeats=bool(no_back_to_back_repeats))
        return "\n".join(self.decode(ids)), ""

    @torch.no_grad()
    def interpolate(self, first, second, steps, no_back_to_back_repeats=False):
        """`(decodes of `steps` points between the two posterior means, one a line; notes)`."""
        try:
            steps = int(steps)
        except (TypeError, ValueError, OverflowError):
            return "", "The number of steps must be a whole number."
        if not 2 <= steps <= MAX_STEPS:
            return "", f"Ask for 2 to {MAX_STEPS} steps."
        (a, notes_a), (b, notes_b) = self.clean(first), self.clean(second)
        if a is None or b is None:
            return "", " ".join(["First sentence: " + n for n in notes_a] + ["Second sentence: " + n for n in notes_b])
        ids = self.model.interpolate(self.encode(a)["input_ids"], self.encode(b)["input_ids"], steps=steps,
                                     max_new_tokens=MAX_NEW_TOKENS,
                                     no_back_to_back_repeats=bool(no_back_to_back_repeats))
        return "\n".join(self.decode(ids)), " ".join(notes_a + notes_b)


def load_probes(path: str) -> dict:
    """`{attribute: (mean, std, weight, bias, classes)}` from a file written by `hf_hrvae.paper.analysis.save_probes`."""
    from safetensors import safe_open

    probes = {}
    with safe_open(path, framework="pt") as handle:
        classes = json.loads(handle.metadata()["classes"])
        for attribute, names in classes.items():
            tensors = [handle.get_tensor(f"{attribute}.{part}").double() for part in ("mean", "std", "weight", "bias")]
            probes[attribute] = (*tensors, names)
    return probes


def predict_probes(probes: dict, mu: torch.Tensor) -> dict:
    """What each linear probe reads off one posterior mean `(1, D)`: `{attribute: class}`."""
    read = {}
    for attribute, (mean, std, weight, bias, classes) in probes.items():
        scores = ((mu.double() - mean) / std) @ weight + bias
        read[attribute] = classes[int(scores.argmax())]
    return read


def build_demo(model_name_or_path: str, probes_path: str | None = None) -> gr.Blocks:
    """The page: three tabs, each also an API endpoint (`api_name`)."""
    demo = Demo(model_name_or_path, probes_path)
    with gr.Blocks(title="HR-VAE") as blocks:
        gr.Markdown(f"# HR-VAE\nA sentence VAE (Li et al., 2019), model `{Path(model_name_or_path).name}`: "
                    "everything it writes comes from the latent z.")
        ban = gr.Checkbox(value=False, label="forbid a word right after itself (a decoding trick, not the model; "
                          "off: plain decoding, as the project's numbers)")
        with gr.Tab("Reconstruct"):
            sentence = gr.Textbox(label="sentence", value="the eagle is a cheap coffee shop near burger king .")
            run = gr.Button("Reconstruct", variant="primary")
            reconstruction = gr.Textbox(label="greedy reconstruction from the posterior mean", elem_id="reconstruction")
            probes = gr.JSON(label="what the linear probes read from the latent (docs/latent.md)")
            notes = gr.Markdown(elem_id="reconstruct-notes")
            run.click(demo.reconstruct, [sentence, ban], [reconstruction, probes, notes], api_name="reconstruct")
        with gr.Tab("Sample"):
            with gr.Row():
                count = gr.Number(label="samples", value=5, precision=0)
                seed = gr.Number(label="seed", value=0, precision=0)
                method = gr.Radio(["greedy", "top-p"], value="top-p", label="decoding")
            run = gr.Button("Sample from the prior", variant="primary")
            samples, sample_notes = gr.Textbox(label="samples", lines=6), gr.Markdown()
            run.click(demo.sample, [count, seed, method, ban], [samples, sample_notes], api_name="sample")
        with gr.Tab("Interpolate"):
            first = gr.Textbox(label="from", value="the eagle is a cheap coffee shop near burger king .")
            second = gr.Textbox(label="to", value="alimentum is a family-friendly chinese restaurant in the city centre .")
            steps = gr.Slider(2, MAX_STEPS, value=5, step=1, label="steps")
            run = gr.Button("Interpolate", variant="primary")
            path, path_notes = gr.Textbox(label="decodes along the line", lines=MAX_STEPS), gr.Markdown()
            run.click(demo.interpolate, [first, second, steps, ban], [path, path_notes], api_name="interpolate")
    blocks.hrvae = demo  # the tests compare the page with the model behind it
    return blocks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a model folder or Hub id (default: $HRVAE_MODEL, else "
                        "model/ beside this file, else the repository's models/hrvae-e2e-inputless)")
    parser.add_argument("--probes", default=str(HERE / PROBES_FILE), help="probes written by --save_probes")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    build_demo(args.model or default_model(), args.probes).launch(server_port=args.port)


if __name__ == "__main__":
    main()
