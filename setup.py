import os

from setuptools import find_packages
from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    scope = {}
    with open(os.path.join(HERE, "keras_prompt", "version.py")) as file:
        exec(file.read(), scope)
    return scope["__version__"]


setup(
    name="keras-prompt",
    version=read_version(),
    description=(
        "Prompt tuning (Lester et al., 2021) for KerasHub T5 models: train "
        "soft prompts on a frozen backbone, serve many tasks from one model."
    ),
    long_description=open(os.path.join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_prompt", "keras_prompt.*"]),
    include_package_data=True,
    package_data={"keras_prompt": ["presets/*/*", "presets/*/*/*"]},
    install_requires=[
        # tensorflow-text 2.21 pins the full `tensorflow` 2.21 wheel.
        "tensorflow>=2.21,<2.22",
        "tensorflow-text>=2.21,<2.22",
        "keras>=3.10,<4",
        "keras-hub>=0.32,<0.33",
        "tensorflow-datasets>=4.9.9,<5",
        "tensorboard>=2.21,<2.22",
        "tf2onnx>=1.17,<1.18",
        "onnx>=1.17",
        "onnxruntime>=1.20",
        "ai-edge-litert>=2.0",
        "safetensors>=0.4",
        "sentencepiece>=0.2",
        "numpy>=1.26",
        "tqdm>=4.60",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "tensorflow-serving-api>=2.21,<2.22",
            # KerasHub's own task conformance checks (its test_case) use it.
            "grain",
        ],
    },
    entry_points={"console_scripts": ["keras-prompt=keras_prompt.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
