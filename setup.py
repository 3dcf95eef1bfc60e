"""spine_d2: spinal sagittal alignment (TK, LL, SS, PT, PI) from photos and screenshots of X-rays."""
from setuptools import find_packages, setup

setup(
    name="spine_d2",
    version="0.1.0",
    description=__doc__,
    packages=find_packages(include=["spine_d2", "spine_d2.*"]),
    package_data={"spine_d2.serve": ["static/*"],  # the page (tools/serve.py)
                  "spine_d2.evaluation": ["templates/*"],  # the report's HTML
                  "spine_d2.zoo": ["*.pth", "*.yaml", "*.json", "*.md"]},  # the shipped models
    python_requires=">=3.10",
    # Exact pins live in requirements.txt (installed by `make setup`); detectron2 is installed
    # separately because it is not on PyPI under its own name.
    install_requires=[
        "numpy<2",
        "opencv-python-headless",
        "pillow-heif",
        "labelme>=5",
        "hydra-core>=1.3,<1.4",
        "omegaconf>=2.3",
        "pandas",
        "scipy",
        "statsmodels",
        "pingouin",             # the ICC's cross-check in the tests (tests/test_evaluation_agreement.py)
        "matplotlib",
        "seaborn",
        "jinja2",
        "tabulate",
        "pycocotools",
        "torch",
        "torchvision",
        "shapely",
        "numba",
        "fastapi",
        "uvicorn",
        "python-multipart",
    ],
)
