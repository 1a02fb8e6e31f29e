"""Training: the config, the loop, and the files a trained network is kept in.

- ``config``: ``TrainConfig``, each field declared once (default, rule, help); config.json,
  and a search's best.json read back
- ``presets``: the named recipes of ``--preset``
- ``loop``: the training loop, read top to bottom; ``train(config, data)``
- ``teacher``: trained nets whose softened answers a distilled run learns (``--teacher``)
- ``inference``: batched prediction with the normalisation, and test-time views
- ``metrics``: accuracy and the confusion matrix
- ``threads``: the BLAS thread count, chosen on purpose
- ``checkpointing``: resumable training (when to save a checkpoint, how to restore a run)
- ``checkpoint_file``: checkpoint.npz, written and read back
- ``signals``: Ctrl-C and SIGTERM caught to stop at a safe point
- ``model_file``: model.npz, saved and loaded (``numpy_mlp.save_model``, ``load_model``)
"""
