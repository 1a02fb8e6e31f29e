"""The data: what a dataset is, each format's files, and what is done to images.

- ``dataset``: ``Dataset`` (train / val / test uint8 rows, their ``Geometry`` and class
  names), ``DatasetKind``, the validation split, where datasets live
- ``registry``: the ``--dataset`` choices, and ``load_dataset``
- one module per format, its constants and readers together: ``cifar10``, ...
- ``download``: the bounded, md5-checked download
- ``images``: PNG and JPEG files as rows, bounded
- ``preprocessing``: the normalisations (``Preprocessor``, ``preprocess``)
- ``augment``, ``mixing``: flips, crops, test-time views; MixUp and CutMix
"""
