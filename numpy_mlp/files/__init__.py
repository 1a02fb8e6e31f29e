"""Files, read bounded and written whole: nothing here knows what a run or a model is.

- ``atomic``: write a file so that a crash leaves the old one or the new one, whole
- ``jsonfile``: bounded JSON reading, and ``Fields``, the field-by-field checks every saved
  file shares
- ``npzfile``: a bounded ``.npz`` reader that never unpickles
- ``tomlfile``: a bounded TOML reader (``--config FILE.toml``)
- ``safe_pickle``: the restricted unpickler of CIFAR's batch files
"""
