"""End-to-end on the real CIFAR-10 in ../shared/data (fails, never skips, if it is missing).

The code cells of the course notebook, as a student runs them against ``numpy_mlp``: its
own float64 preprocessing, minibatches drawn with replacement from ``np.random``,
``loss.item()``, a test-batch accuracy every step, a progress line every 1/20 of the run,
the loss and accuracy plots, the accuracies after training on all 50,000 training and
10,000 test images, and a small hyperparameter loop selected on validation. Two things
differ from the course: the data comes from ``load_cifar10`` instead of TensorFlow (the
whole loading cell), and beta is a valid momentum (a comment marks each place). The
course's own text is not in this repository: the cells are rebuilt from its description.
They are the contract: a change to the package that breaks one breaks a student's notebook.
"""

import matplotlib
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

matplotlib.use("Agg")  # the plot cells draw off screen: no display needed
import matplotlib.pyplot as plt  # noqa: E402

pytestmark = pytest.mark.slow

IMPORTS = """\
import numpy as np
import matplotlib.pyplot as plt

from numpy_mlp import FullyConnectedNet, SGD, cross_entropy_loss
"""

# replaces the course's TensorFlow cell (tf.keras.datasets.cifar10.load_data())
LOAD = """\
from numpy_mlp import load_cifar10

data = load_cifar10(val_size=0, download=False)  # the folder in $NUMPY_MLP_DATA
x_train, y_train = data.X_train, data.y_train
x_test, y_test = data.X_test, data.y_test
"""

PREPROCESS = """\
x_train = x_train.reshape(x_train.shape[0], -1).astype(np.float64)
x_test = x_test.reshape(x_test.shape[0], -1).astype(np.float64)
y_train = y_train.reshape(-1)
y_test = y_test.reshape(-1)

# each image: minus its own mean, divided by its own standard deviation
x_train -= x_train.mean(axis=1, keepdims=True)
x_train /= x_train.std(axis=1, keepdims=True)
x_test -= x_test.mean(axis=1, keepdims=True)
x_test /= x_test.std(axis=1, keepdims=True)

print(x_train.shape, x_test.shape)
"""

MODEL = """\
input_dim = x_train.shape[1]
hidden_dim = 200
num_classes = 10
model = FullyConnectedNet(input_dim=input_dim, hidden_dim=hidden_dim, num_classes=num_classes)

alpha = 2e-3
beta = 0.9  # beta replaced: the course used 1 and 10, outside [0, 1)
optimizer = SGD(model.params, alpha=alpha, beta=beta)
"""

TRAIN = """\
num_train = x_train.shape[0]
num_test = x_test.shape[0]
num_iters = 2000
batch_size = 40
print_every = num_iters // 20

loss_history = []
acc_train_history = []
acc_test_history = []

for it in range(num_iters):
    idx = np.random.choice(num_train, batch_size)
    x_batch = x_train[idx]
    y_batch = y_train[idx]

    scores, cache = model.forward(x_batch)
    loss, dscores = cross_entropy_loss(scores, y_batch)
    model.backward(dscores, cache)
    optimizer.step(model.grads)

    acc_train = np.mean(np.argmax(scores, axis=1) == y_batch)

    idx_test = np.random.choice(num_test, batch_size)
    scores_test, _ = model.forward(x_test[idx_test])
    acc_test = np.mean(np.argmax(scores_test, axis=1) == y_test[idx_test])

    loss_history.append(loss.item())
    acc_train_history.append(acc_train.item())
    acc_test_history.append(acc_test.item())

    if it % print_every == 0:
        print("iteration %d / %d: loss %f, train acc %.3f, test acc %.3f"
              % (it, num_iters, loss.item(), acc_train.item(), acc_test.item()))
"""

PLOT_LOSS = """\
plt.plot(loss_history)
plt.xlabel("iteration")
plt.ylabel("loss")
plt.title("Loss history")
plt.show()
"""

PLOT_ACCURACY = """\
plt.plot(acc_train_history, label="train")
plt.plot(acc_test_history, label="test")
plt.xlabel("iteration")
plt.ylabel("accuracy")
plt.title("Classification accuracy history")
plt.legend()
plt.show()
"""

AFTER_TRAINING = """\
scores, _ = model.forward(x_train)
acc_train = np.mean(np.argmax(scores, axis=1) == y_train)
scores, _ = model.forward(x_test)
acc_test = np.mean(np.argmax(scores, axis=1) == y_test)
print("after training: train acc %.4f, test acc %.4f" % (acc_train.item(), acc_test.item()))
"""

HYPERPARAMETERS = """\
num_val = 1000
x_tr, y_tr = x_train[:-num_val], y_train[:-num_val]
x_val, y_val = x_train[-num_val:], y_train[-num_val:]

hidden_dims = [100, 200]
alphas = [1e-3, 3e-3]
betas = [0.9]  # beta replaced: the course used 1 and 10, outside [0, 1)
batch_sizes = [40, 80]
num_iters_list = [500]

results = {}
best_val = -1
best_model = None
for hidden_dim in hidden_dims:
    for alpha in alphas:
        for beta in betas:
            for batch_size in batch_sizes:
                for num_iters in num_iters_list:
                    model = FullyConnectedNet(input_dim=input_dim, hidden_dim=hidden_dim,
                                              num_classes=num_classes)
                    optimizer = SGD(model.params, alpha=alpha, beta=beta)
                    for it in range(num_iters):
                        idx = np.random.choice(x_tr.shape[0], batch_size)
                        scores, cache = model.forward(x_tr[idx])
                        loss, dscores = cross_entropy_loss(scores, y_tr[idx])
                        model.backward(dscores, cache)
                        optimizer.step(model.grads)
                    scores, _ = model.forward(x_val)
                    acc_val = np.mean(np.argmax(scores, axis=1) == y_val).item()
                    setting = (hidden_dim, alpha, beta, batch_size, num_iters)
                    results[setting] = acc_val
                    print("hidden %d, alpha %g, beta %g, batch %d, iters %d: val acc %.3f"
                          % (setting + (acc_val,)))
                    if acc_val > best_val:
                        best_val = acc_val
                        best_setting = setting
                        best_model = model

scores, _ = best_model.forward(x_test)
best_test = np.mean(np.argmax(scores, axis=1) == y_test)
print("best:", best_setting, "val acc %.3f, test acc %.3f" % (best_val, best_test.item()))
"""

CELLS = [IMPORTS, LOAD, PREPROCESS, MODEL, TRAIN, PLOT_LOSS, PLOT_ACCURACY, AFTER_TRAINING,
         HYPERPARAMETERS]


def run_cells(cells):
    """Execute ``cells`` in order in one namespace, as a notebook kernel does.

    Returns the namespace and, for each cell, the figures it drew as lists of the number
    of points of each line: the figures are then closed, as Jupyter's inline backend does
    at the end of a cell (Agg's ``plt.show()`` closes nothing, so the next cell would
    otherwise draw into the same axes).
    """
    ns, drawn = {}, []
    for i, cell in enumerate(cells):
        exec(compile(cell, f"<notebook cell {i}>", "exec"), ns)
        figures = [plt.figure(n) for n in plt.get_fignums()]
        drawn.append([[len(line.get_ydata()) for ax in fig.axes for line in ax.lines]
                      for fig in figures])
        plt.close("all")
    return ns, drawn


def test_the_course_notebook_cells_reach_40_percent(cifar_dir, monkeypatch, capsys):
    monkeypatch.setenv("NUMPY_MLP_DATA", str(cifar_dir))
    rng_state = np.random.get_state()
    np.random.seed(0)  # the cells draw their batches from NumPy's global generator
    plt.close("all")
    try:
        with threadpool_limits(1):  # tiny products: one BLAS thread is fastest
            ns, drawn = run_cells(CELLS)
    finally:
        plt.close("all")
        np.random.set_state(rng_state)
    out = capsys.readouterr().out
    print(out)

    # the preprocessing cell: float64 rows of mean 0 and standard deviation 1
    assert ns["x_train"].dtype == np.float64 and ns["x_train"].shape == (50000, 3072)
    np.testing.assert_allclose(ns["x_test"].std(axis=1), 1.0, rtol=1e-9)
    # the training cell: one history entry per step, a line every 1/20, the loss went down
    steps = 2000
    for name in ("loss_history", "acc_train_history", "acc_test_history"):
        assert len(ns[name]) == steps and all(type(v) is float for v in ns[name])
    assert out.count("iteration ") == 20
    loss = ns["loss_history"]
    assert np.mean(loss[:20]) > np.mean(loss[-100:]) + 0.4
    # the plot cells: a figure with the loss, then one with the two accuracies
    assert drawn[CELLS.index(PLOT_LOSS)] == [[steps]]
    assert drawn[CELLS.index(PLOT_ACCURACY)] == [[steps, steps]]
    # after training, on all 50,000 training and 10,000 test images (the hyperparameter
    # cell below it leaves acc_train and acc_test alone)
    assert "after training: train acc" in out
    assert ns["acc_test"] >= 0.40
    # the hyperparameter cell: every setting tried, the best chosen on validation
    results = ns["results"]
    assert len(results) == 8 and ns["best_val"] == max(results.values())
    assert ns["best_setting"] == max(results, key=results.get) and ns["best_test"] > 0.25
