from setuptools import find_packages, setup

setup(
    name="hf_hrvae",
    version="0.1.0",
    description="HR-VAE (Li et al., 2019), a text VAE without KL collapse, as a Hugging Face model",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["hf_hrvae", "hf_hrvae.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.4",
        "transformers>=5,<6",
        "tokenizers>=0.21",
        "datasets>=4",
        "accelerate>=1.0",
        "evaluate>=0.4",
        "sacrebleu>=2",
        "safetensors>=0.4",
        "huggingface-hub>=1.0",
        "tqdm",
        "matplotlib",
    ],
    extras_require={
        "word2vec": ["gensim>=4.3"],
        "demo": ["gradio>=6,<7"],
        "tests": ["pytest>=8", "scipy", "mpmath", "gensim>=4.3", "gradio>=6,<7", "playwright"],
        "dev": ["pytest>=8", "scipy", "mpmath", "gensim>=4.3", "gradio>=6,<7", "playwright", "ruff"],
    },
)
