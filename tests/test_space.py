"""The Space (examples/space/app.py): started on a free localhost port, called through gradio_client as a user of
its API would, and once in a real browser where one is installed."""

import importlib.util
import os
import shutil
import socket
import sys

import pytest
import torch

from conftest import REPO_ROOT

gr = pytest.importorskip("gradio", reason="the Space's tests need gradio: pip install -e '.[demo]'")
gradio_client = pytest.importorskip("gradio_client")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

SHIPPED = REPO_ROOT / "models" / "hrvae-e2e-inputless"
SENTENCE = "The Eagle is a cheap coffee shop near Burger King in the riverside area."
OTHER = "Alimentum is a family-friendly Chinese restaurant in the city centre."
STUTTERED = "The child-friendly riverside venue Alimentum is located near Burger King."  # "alimentum alimentum"


def load_app():
    spec = importlib.util.spec_from_file_location("space_app", REPO_ROOT / "examples" / "space" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["space_app"] = module
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def probes_file(tmp_path_factory, sentences):
    """Probes fitted on a few hundred E2E training sentences, saved as `--save_probes` saves them."""
    import csv

    from hf_hrvae.paper.analysis import encode_posteriors, probe_attributes, save_probes
    from hf_hrvae.scripts import load_pretrained
    from conftest import SHARED_DATA

    path = SHARED_DATA / "e2e_nlg" / "train.csv"
    if not path.exists():
        pytest.skip("the probes are fitted on E2E's meaning representations (../shared/data/e2e_nlg)")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for _, row in zip(range(300), csv.DictReader(handle))]
    model, tokenizer = load_pretrained(str(SHIPPED))
    mu, _ = encode_posteriors(model, tokenizer, [row["human_reference"] for row in rows])
    mrs = [row["meaning_representation"] for row in rows]
    _, fitted = probe_attributes(mu, mrs, mu, mrs, attributes=("eatType", "area"))
    file = save_probes(fitted, tmp_path_factory.mktemp("probes") / "probes.safetensors")
    return file, fitted


@pytest.fixture(scope="module")
def space(probes_file):
    app = load_app()
    blocks = app.build_demo(str(SHIPPED), str(probes_file[0]))
    port = free_port()
    blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    client = gradio_client.Client(url, verbose=False)
    yield blocks, client, url
    blocks.close()


def decoded(demo, ids):
    return demo.tokenizer.batch_decode(ids, skip_special_tokens=True)


def test_the_three_endpoints_give_what_the_model_gives(space, probes_file):
    blocks, client, _ = space
    demo, model = blocks.hrvae, blocks.hrvae.model
    reconstruction, read, notes = client.predict(SENTENCE, api_name="/reconstruct")
    batch = demo.tokenizer([" ".join(SENTENCE.split())], return_tensors="pt")
    expected = decoded(demo, model.generate(**batch, max_new_tokens=60))[0]
    assert reconstruction == expected and reconstruction and notes == ""
    mu, _ = model.encode(batch["input_ids"], batch["attention_mask"])
    assert read == {attribute: probe.predict(mu)[0] for attribute, probe in probes_file[1].items()}
    from safetensors import safe_open

    with safe_open(probes_file[0], framework="pt") as handle:  # stored in float32, read as the float64 fit reads
        assert {handle.get_tensor(name).dtype for name in handle.keys()} == {torch.float32}

    samples, notes = client.predict(3, 7, "greedy", api_name="/sample")
    torch.manual_seed(7)
    assert samples.split("\n") == decoded(demo, model.generate(num_return_sequences=3, max_new_tokens=60))
    top_p, _ = client.predict(3, 7, "top-p", api_name="/sample")
    assert top_p == client.predict(3, 7, "top-p", api_name="/sample")[0] and len(top_p.split("\n")) == 3  # seeded

    path, notes = client.predict(SENTENCE, OTHER, 4, api_name="/interpolate")
    a, b = (demo.tokenizer(s, return_tensors="pt")["input_ids"] for s in (SENTENCE, OTHER))
    assert path.split("\n") == decoded(demo, model.interpolate(a, b, steps=4, max_new_tokens=60))
    assert path.split("\n")[0] == expected  # the path starts at the reconstruction of its first end


def test_the_checkbox_forbids_back_to_back_repeats_everywhere(space):
    """Off (the default, and when an API call leaves it out): plain decoding. On: `no_back_to_back_repeats=True`."""
    from hf_hrvae.text_quality import repeat_rate

    blocks, client, _ = space
    demo, model = blocks.hrvae, blocks.hrvae.model
    batch = demo.tokenizer([STUTTERED], return_tensors="pt")
    plain, _, _ = client.predict(STUTTERED, api_name="/reconstruct")
    banned, _, _ = client.predict(STUTTERED, True, api_name="/reconstruct")
    assert plain == client.predict(STUTTERED, False, api_name="/reconstruct")[0]
    assert plain == decoded(demo, model.generate(**batch, max_new_tokens=60))[0]
    assert repeat_rate([plain]) == 1.0, f"the shipped model no longer stutters on {STUTTERED!r}: pick another"
    assert banned == decoded(demo, model.generate(**batch, max_new_tokens=60, no_back_to_back_repeats=True))[0]
    assert repeat_rate([banned]) == 0.0

    for banned_too in (False, True):
        samples, _ = client.predict(sys.modules["space_app"].MAX_SAMPLES, 0, "greedy", banned_too, api_name="/sample")
        path, _ = client.predict(STUTTERED, OTHER, 4, banned_too, api_name="/interpolate")
        rate = repeat_rate(samples.split("\n") + path.split("\n"))
        assert rate == 0.0 if banned_too else rate > 0.2


@pytest.mark.parametrize("text, message", [
    ("", "Type a sentence first."),
    ("   \n\t ", "Type a sentence first."),
    ("word " * 10000, "50,000 characters"),
    ("\x00\x07", "Nothing is left to read."),
])
def test_bad_sentences_are_answered_in_the_page(space, text, message):
    reconstruction, read, notes = space[1].predict(text, api_name="/reconstruct")
    assert reconstruction == "" and read in ({}, None) and message in notes


def test_unusual_sentences_are_read_with_a_note(space):
    client = space[1]
    reconstruction, _, notes = client.predict("Das ist ein ganz anderer Satz ohne bekannte Wörter.",
                                              api_name="/reconstruct")
    assert reconstruction and "not in the model's vocabulary" in notes  # another language: read, and said so
    clean, _, _ = client.predict(SENTENCE, api_name="/reconstruct")
    controlled, _, notes = client.predict(SENTENCE.replace(" ", "\x00 ", 3), api_name="/reconstruct")
    assert controlled == clean and "Control characters were replaced" in notes
    long, _, notes = client.predict(" ".join(["the pub"] * 100), api_name="/reconstruct")
    assert long and "only the first 126 are read" in notes and len(long.split()) <= 60  # generation bounded


@pytest.mark.parametrize("arguments, message", [
    ((0, 1, "greedy"), "Ask for 1 to 20 samples."),
    ((1000, 1, "greedy"), "Ask for 1 to 20 samples."),
])
def test_bad_sample_requests_are_answered(space, arguments, message):
    samples, notes = space[1].predict(*arguments, api_name="/sample")
    assert samples == "" and message in notes
    # a decoding the radio does not offer: gradio refuses it with its own message, the model is never called
    with pytest.raises(Exception, match="not in the list of choices"):
        space[1].predict(2, 1, "beam", api_name="/sample")
    assert space[0].hrvae.sample(2, 1, "beam") == ("", "The decoding is greedy or top-p.")


def test_bad_interpolations_are_answered(space):
    path, notes = space[1].predict(SENTENCE, "", 4, api_name="/interpolate")
    assert path == "" and "Second sentence: Type a sentence first." in notes
    demo = space[0].hrvae
    assert demo.interpolate(SENTENCE, OTHER, 1) == ("", "Ask for 2 to 10 steps.")  # the slider stops at 2 anyway
    assert demo.interpolate(SENTENCE, OTHER, "many")[0] == ""


def test_without_probes_the_page_says_how_to_get_them(tmp_path):
    demo = load_app().Demo(str(SHIPPED), str(tmp_path / "missing.safetensors"))
    reconstruction, read, _ = demo.reconstruct(SENTENCE)
    assert reconstruction and "--save_probes" in read["(probes)"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install chromium)")
def test_a_browser_types_a_sentence_and_reads_its_reconstruction(probes_file, tmp_path):
    """The page as a Space visitor sees it: the committed probes (examples/space/probes.safetensors) when present."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (drives the system Chromium)")
    committed = REPO_ROOT / "examples" / "space" / "probes.safetensors"
    blocks = load_app().build_demo(str(SHIPPED), str(committed if committed.exists() else probes_file[0]))
    port = free_port()
    blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    expected = blocks.hrvae.reconstruct(SENTENCE)[0]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(url)
        page.get_by_label("sentence").fill(SENTENCE)
        page.get_by_role("button", name="Reconstruct").click()
        output = page.locator("#reconstruction textarea")
        page.wait_for_function("e => e.value.length > 0", arg=output.element_handle(), timeout=30000)
        assert output.input_value() == expected
        screenshot = tmp_path / "demo.png"
        page.screenshot(path=str(screenshot), full_page=True)
        # the checkbox, ticked in the browser, reaches the decoding: a stuttering sentence no longer stutters
        page.get_by_label("sentence").fill(STUTTERED)
        page.get_by_role("checkbox").check()
        page.get_by_role("button", name="Reconstruct").click()
        banned = blocks.hrvae.reconstruct(STUTTERED, True)[0]
        assert banned != blocks.hrvae.reconstruct(STUTTERED)[0]
        page.wait_for_function("([e, v]) => e.value === v", arg=[output.element_handle(), banned], timeout=30000)
        browser.close()
    blocks.close()
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("HRVAE_DEMO_SCREENSHOT"):  # how docs/figures/demo.png is made
        shutil.copy(screenshot, os.environ["HRVAE_DEMO_SCREENSHOT"])


def test_the_script_launches_the_model_it_is_given(monkeypatch, tmp_path):
    import subprocess

    app = load_app()
    monkeypatch.setenv("HRVAE_MODEL", "someone/hrvae-e2e")
    assert app.default_model() == "someone/hrvae-e2e"  # a Space variable wins
    monkeypatch.delenv("HRVAE_MODEL")
    assert app.default_model() == str(SHIPPED)  # in a checkout: the shipped model
    launched = {}
    monkeypatch.setattr(app, "build_demo", lambda model, probes: launched.update(model=model, probes=probes) or
                        type("Page", (), {"launch": lambda self, server_port: launched.update(port=server_port)})())
    monkeypatch.setattr(sys, "argv", ["app.py", "--model", str(tmp_path), "--port", "7999"])
    app.main()
    assert launched == {"model": str(tmp_path), "probes": str(REPO_ROOT / "examples" / "space" / "probes.safetensors"),
                        "port": 7999}
    help_text = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / "space" / "app.py"), "--help"],
                               capture_output=True, text=True, timeout=120)
    assert help_text.returncode == 0 and "--model" in help_text.stdout
