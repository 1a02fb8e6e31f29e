"""The datasets a run can train on: each ``--dataset`` name and its :class:`DatasetKind`.

Each kind is declared by the module of its file format, with its geometry, official files,
class names and reader: :mod:`~numpy_mlp.data.cifar10`, :mod:`~numpy_mlp.data.idx` (MNIST,
Fashion-MNIST), :mod:`~numpy_mlp.data.cifar100` (fine and coarse labels) and
:mod:`~numpy_mlp.data.folder` (a folder of images). :data:`DATASETS` lists them; the
``--dataset`` flag's choices come from its keys (training/config.py). A dataset's
:class:`~numpy_mlp.data.dataset.Geometry` travels with the data (``data.geometry``), the
TrainConfig (``dataset``, ``image_size``) and the saved model, so that augmentation,
pictures, image files and the ONNX export reshape every row the same way.

    N  images      D  channels * height * width      C  classes
"""

from __future__ import annotations

from .cifar10 import CIFAR10
from .cifar100 import CIFAR100, CIFAR100_COARSE
from .dataset import Dataset, DatasetKind
from .download import Fetch
from .folder import FOLDER
from .idx import FASHION_MNIST, MNIST

DATASETS: dict[str, DatasetKind] = {k.name: k for k in (
    CIFAR10, MNIST, FASHION_MNIST, CIFAR100, CIFAR100_COARSE, FOLDER)}
DEFAULT_DATASET = "cifar10"
DATA_FIELDS = ("dataset", "image_size", "val_size", "seed")  # the TrainConfig fields of the data


def default_folder(dataset: str):
    """Where ``dataset`` lives unless --data-dir says: a subfolder of
    :func:`~numpy_mlp.data.dataset.default_data_dir` (CIFAR-10: that folder itself)."""
    return DATASETS[dataset].default_folder()


def load_dataset(config, data_dir=None, *, download=True, create=True, progress=True,
                 log=None, sources=None) -> Dataset:
    """The dataset ``config.dataset`` names, split as ``config`` says (val_size, seed; a
    folder of images also image_size), read by its kind's reader.

    ``data_dir``: its folder (default: :func:`~numpy_mlp.data.dataset.default_data_dir`, with
    a subfolder per dataset other than CIFAR-10; a folder of images has no default).
    ``download``, ``create``, ``progress``, ``log``: what may happen to a missing official
    file (:class:`~numpy_mlp.data.download.Fetch`); ``sources``: ``{file name: (url, md5)}``
    overriding the official ones (for tests and mirrors). Returns a
    :class:`~numpy_mlp.data.dataset.Dataset`; DataError if it cannot be read.
    """
    fetch = Fetch(download=download, create=create, progress=progress, log=log,
                  sources=sources or {})
    return DATASETS[config.dataset].load(data_dir, fetch, val_size=config.val_size,
                                         seed=config.seed, image_size=config.image_size)
