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

from .cifar10 import load_cifar10
from .dataset import CIFAR10_GEOMETRY, MNIST_GEOMETRY, DatasetKind, Geometry, OfficialFile
from .download import ARCHIVE_NAME, OFFICIAL_MD5, OFFICIAL_URL
from .formats import load_cifar100, load_folder, load_idx


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
    return DATASETS[dataset].default_folder()


def geometry_of_data(data) -> Geometry:
    """The geometry of ``data``'s rows: its own, else CIFAR-10's (for any object with
    X_train ... y_test, such as a test's synthetic set)."""
    return getattr(data, "geometry", CIFAR10_GEOMETRY)


def load_dataset(config, data_dir=None, *, download=True, create=True, progress=True,
                 log=None, sources=None):
    """The dataset ``config.dataset`` names, split as ``config`` says (val_size, seed).

    ``data_dir``: its folder (default: :func:`~numpy_mlp.data.default_data_dir`, with a
    subfolder per dataset other than CIFAR-10; a folder of images has no default).
    ``sources``: ``{file name: (url, md5)}`` overriding the official ones (for tests and
    mirrors). Returns a :class:`~numpy_mlp.data.Dataset`; DataError if it cannot be read.
    """
    kind = DATASETS[config.dataset]
    common = dict(val_size=config.val_size, seed=config.seed)
    if kind.name == "cifar10":
        url, md5 = (sources or {}).get(ARCHIVE_NAME, (OFFICIAL_URL, OFFICIAL_MD5))
        return load_cifar10(data_dir, download=download, create=create, progress=progress,
                            url=url, md5=md5, log=log, **common)
    if kind.name == "folder":
        return load_folder(kind, data_dir, kind.geometry_for(config.image_size), **common)
    loader = load_idx if kind.name in ("mnist", "fashion-mnist") else load_cifar100
    return loader(kind, data_dir, download=download, create=create, progress=progress,
                  log=log, sources=sources or {}, **common)
