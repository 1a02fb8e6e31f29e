"""CIFAR-100: its official archive read with CIFAR-10's checks, with the fine (100) or the
coarse (20) labels: the kinds :data:`CIFAR100` and :data:`CIFAR100_COARSE`.

``cifar-100-python.tar.gz`` is read member by member (``train``, ``test``, ``meta``) with
the checks and the restricted unpickler of :mod:`numpy_mlp.data.cifar10`, never extracted;
it is downloaded (md5-checked) into the data folder when missing and allowed. Both kinds
read the same archive, from the same default folder.

    N  images      D  3072 = 3 x 32 x 32      C  100 fine or 20 coarse classes
"""

from __future__ import annotations

from .cifar10 import CIFAR10_GEOMETRY, MAX_META_BYTES, check_batch, check_meta, read_tar
from .dataset import DatasetKind, Parts
from .download import Fetch, OfficialFile

CIFAR100_DIR = "cifar-100-python"  # the folder inside the official archive
OFFICIAL_FILE = OfficialFile("cifar-100-python.tar.gz",
                             "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                             "eb9058c3a382ffc7106e4002c42a8d85")
# the most bytes each CIFAR-100 member may have (the official train file has 155 MB)
CIFAR100_LIMITS = {"train": 200_000_000, "test": 40_000_000, "meta": MAX_META_BYTES,
                   "file.txt~": MAX_META_BYTES}
CIFAR100_MEMBERS = frozenset({CIFAR100_DIR, *(f"{CIFAR100_DIR}/{n}" for n in CIFAR100_LIMITS)})
CIFAR100_CLASSES = {"fine": 100, "coarse": 20}


def _cifar100_limit(name: str) -> int:
    return CIFAR100_LIMITS.get(name, MAX_META_BYTES)  # the folder itself: no bytes


def read_cifar100(kind: DatasetKind, data_dir, geometry, fetch: Fetch) -> Parts:
    """CIFAR-100 from its official archive in ``data_dir`` (through ``fetch``: downloaded if
    missing and allowed), with the fine or coarse labels as ``kind.labels`` says."""
    folder, default = kind.folder(data_dir)
    official = kind.files[0]
    archive = fetch(folder, official, what=kind.title, parents=default)
    classes = CIFAR100_CLASSES[kind.labels]

    def read(load):
        batches = [check_batch(*load(n), labels=f"{kind.labels}_labels", classes=classes,
                               what="CIFAR-100") for n in ("train", "test")]
        names = check_meta(*load("meta"), key=f"{kind.labels}_label_names", classes=classes,
                           kind="CIFAR-100 meta", what="CIFAR-100")
        return batches, names

    (train, test), names = read_tar(
        archive, top=CIFAR100_DIR, members=CIFAR100_MEMBERS, limit=_cifar100_limit,
        read=read, max_bytes=sum(CIFAR100_LIMITS.values()), what="CIFAR-100",
        redownload=f"it is not the official archive: delete it and download {official.url}")
    return Parts(train, test, names, str(archive))


CIFAR100 = DatasetKind("cifar100", "CIFAR-100 (100 fine classes)", CIFAR10_GEOMETRY,
                       read_cifar100, (OFFICIAL_FILE,), labels="fine")
CIFAR100_COARSE = DatasetKind("cifar100-coarse", "CIFAR-100 (20 coarse classes)",
                              CIFAR10_GEOMETRY, read_cifar100, (OFFICIAL_FILE,),
                              labels="coarse", home="cifar100")  # the same archive
