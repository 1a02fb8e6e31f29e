"""End-to-end on the real CIFAR-10 in ../shared/data (fails, never skips, if it is missing).

The notebook's own training cell, unchanged but for its imports, must reach 40% test
accuracy on the full 10,000-image test set.
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from numpy_mlp import SGD, FullyConnectedNet, cross_entropy_loss, load_cifar10, preprocess

pytestmark = pytest.mark.slow


def test_notebook_training_cell_reaches_40_percent(cifar_dir):
    data = load_cifar10(cifar_dir, download=False, progress=False)
    X_train, y_train = preprocess(data.X_train), data.y_train
    X_test, y_test = preprocess(data.X_test), data.y_test
    num_train = X_train.shape[0]
    np.random.seed(0)  # the notebook draws its batches from NumPy's global generator

    model = FullyConnectedNet(hidden_dim=200)
    optimizer = SGD(model.params, alpha=2e-3, beta=0.9)

    # ---- the notebook's cell ----
    num_iters = 2000
    batch_size = 40
    print_every = num_iters // 20
    loss_history = []
    train_acc_history = []
    with threadpool_limits(1):  # tiny matrix products: one BLAS thread is fastest here
        for it in range(num_iters):
            idx = np.random.choice(num_train, batch_size, replace=True)
            x_batch, y_batch = X_train[idx], y_train[idx]
            scores, cache = model.forward(x_batch)
            loss, dscores = cross_entropy_loss(scores, y_batch)
            model.backward(dscores, cache)
            optimizer.step(model.grads)
            loss_history.append(loss)
            train_acc_history.append((scores.argmax(axis=1) == y_batch).mean())
            if it % print_every == 0:
                print(f"iteration {it} / {num_iters}: loss {loss:f}, train acc {train_acc_history[-1]:.2f}")
        test_acc = (model.predict(X_test) == y_test).mean()
    # ---- end of the cell ----
    print(f"test accuracy {test_acc:.4f}")
    assert len(loss_history) == num_iters
    assert np.mean(loss_history[:20]) > np.mean(loss_history[-100:]) + 0.4
    assert test_acc >= 0.40
