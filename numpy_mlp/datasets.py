"""The datasets a run can train on, declared once: their geometry, files and class names.

:data:`DATASETS` maps each ``--dataset`` name to a :class:`DatasetKind`; the flag's choices
come from its keys (config.py). Every image is a uint8 row (D,) laid out channel-first, as
CIFAR-10's batch files store it: ``channels`` planes, each a row-major ``height x width``
grid. Its :class:`Geometry` travels with the data (``data.geometry``), the TrainConfig
(``dataset``, ``image_size``) and the saved model, so that augmentation, pictures, image
files and the ONNX export reshape every row the same way.

    N  images      D  channels * height * width      C  classes
"""

from __future__ import annotations

from dataclasses import dataclass

from .download import ARCHIVE_NAME, OFFICIAL_MD5, OFFICIAL_URL


@dataclass(frozen=True)
class Geometry:
    """The shape of one image: ``channels`` (1 grey or 3 RGB) x ``height`` x ``width``."""

    channels: int
    height: int
    width: int

    @property
    def D(self) -> int:
        """Values per image row."""
        return self.channels * self.height * self.width

    @property
    def plane(self) -> int:
        """Values per channel: height * width."""
        return self.height * self.width

    def to_dict(self) -> dict:
        return {"channels": self.channels, "height": self.height, "width": self.width}

    @classmethod
    def from_dict(cls, d) -> Geometry:
        """The geometry :meth:`to_dict` wrote; ValueError if ``d`` is not one."""
        try:
            g = cls(*(d[k] for k in ("channels", "height", "width")))
        except (KeyError, TypeError):
            raise ValueError(f"geometry {d!r}: expected channels, height and width") from None
        if g.channels not in (1, 3) or not all(type(v) is int and 1 <= v <= 4096
                                               for v in (g.height, g.width)):
            raise ValueError(f"geometry {d!r}: expected 1 or 3 channels and sides 1..4096")
        return g

    def __str__(self) -> str:
        return f"{self.channels}x{self.height}x{self.width}"


CIFAR10_GEOMETRY = Geometry(3, 32, 32)
MNIST_GEOMETRY = Geometry(1, 28, 28)


@dataclass(frozen=True)
class OfficialFile:
    """One file as its publishers serve it, and its md5."""

    name: str
    url: str
    md5: str


@dataclass(frozen=True)
class DatasetKind:
    """One ``--dataset`` choice."""

    name: str                     # the --dataset value
    title: str                    # for messages: "MNIST"
    geometry: Geometry | None     # None: 3 x image_size x image_size (a folder of images)
    files: tuple = ()             # the OfficialFiles downloaded into the data folder
    class_names: tuple = ()       # fixed names; empty: read from the files or subfolders
    labels: str = ""              # CIFAR-100: which labels, "fine" or "coarse"
    home: str | None = None       # its subfolder of the default data folder (None: its name)

    def geometry_for(self, image_size: int) -> Geometry:
        return self.geometry or Geometry(3, image_size, image_size)


def _idx_files(base: str, md5s: tuple) -> tuple:
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    return tuple(OfficialFile(n, base + n, m) for n, m in zip(names, md5s))


# md5s as torchvision (datasets/mnist.py) and the publishers list them
_MNIST_FILES = _idx_files("https://ossci-datasets.s3.amazonaws.com/mnist/", (
    "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
    "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))
_FASHION_FILES = _idx_files("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", (
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
    "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))
_CIFAR100_FILES = (OfficialFile("cifar-100-python.tar.gz",
                                "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                                "eb9058c3a382ffc7106e4002c42a8d85"),)

DATASETS = {k.name: k for k in (
    DatasetKind("cifar10", "CIFAR-10", CIFAR10_GEOMETRY,
                (OfficialFile(ARCHIVE_NAME, OFFICIAL_URL, OFFICIAL_MD5),), home=""),
    DatasetKind("mnist", "MNIST", MNIST_GEOMETRY, _MNIST_FILES,
                tuple(str(d) for d in range(10))),
    DatasetKind("fashion-mnist", "Fashion-MNIST", MNIST_GEOMETRY, _FASHION_FILES,
                ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot")),
    DatasetKind("cifar100", "CIFAR-100 (100 fine classes)", CIFAR10_GEOMETRY, _CIFAR100_FILES,
                labels="fine"),
    DatasetKind("cifar100-coarse", "CIFAR-100 (20 coarse classes)", CIFAR10_GEOMETRY,
                _CIFAR100_FILES, labels="coarse", home="cifar100"),  # the same archive
    DatasetKind("folder", "a folder of images", None),
)}
DEFAULT_DATASET = "cifar10"
DATA_FIELDS = ("dataset", "image_size", "val_size", "seed")  # the TrainConfig fields of the data


def default_folder(dataset: str):
    """Where ``dataset`` lives unless --data-dir says: a subfolder of
    :func:`~numpy_mlp.data.default_data_dir` (CIFAR-10: that folder itself)."""
    from .data import default_data_dir

    kind = DATASETS[dataset]
    return default_data_dir() / (kind.name if kind.home is None else kind.home)


def geometry_of_data(data) -> Geometry:
    """The geometry of ``data``'s rows: its own, else CIFAR-10's (for any object with
    X_train ... y_test, such as a test's synthetic set)."""
    return getattr(data, "geometry", CIFAR10_GEOMETRY)


def data_config(saved: dict):
    """A TrainConfig with the data fields (dataset, image_size, val_size, seed) of a saved
    config dict, the defaults for those it lacks: what reads the same split again."""
    from .config import TrainConfig

    return TrainConfig.from_dict({k: saved[k] for k in DATA_FIELDS if k in saved})


def load_dataset(config, data_dir=None, *, download=True, create=True, progress=True,
                 log=None, sources=None):
    """The dataset ``config.dataset`` names, split as ``config`` says (val_size, seed).

    ``data_dir``: its folder (default: :func:`~numpy_mlp.data.default_data_dir`, with a
    subfolder per dataset other than CIFAR-10; a folder of images has no default).
    ``sources``: ``{file name: (url, md5)}`` overriding the official ones (for tests and
    mirrors). Returns a :class:`~numpy_mlp.data.Dataset`; DataError if it cannot be read.
    """
    from .data import load_cifar10
    from .dataset_files import load_cifar100, load_folder, load_idx

    kind = DATASETS[config.dataset]
    common = dict(val_size=config.val_size, seed=config.seed)
    if kind.name == "cifar10":
        url, md5 = (sources or {}).get(ARCHIVE_NAME, (OFFICIAL_URL, OFFICIAL_MD5))
        return load_cifar10(data_dir, download=download, create=create, progress=progress,
                            url=url, md5=md5, log=log, **common)
    if kind.name == "folder":
        return load_folder(data_dir, kind.geometry_for(config.image_size), **common)
    loader = load_idx if kind.name in ("mnist", "fashion-mnist") else load_cifar100
    return loader(kind, data_dir, download=download, create=create, progress=progress,
                  log=log, sources=sources or {}, **common)
