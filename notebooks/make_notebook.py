"""Write notebooks/two_layer_net.ipynb from the cells below (run it after editing them).

    .venv/bin/python notebooks/make_notebook.py

The notebook is kept as this script so that a change to it is a readable diff; the
.ipynb is committed without outputs and executed top to bottom by
tests/test_notebook.py on the real CIFAR-10 (with NUMPY_MLP_NOTEBOOK_FAST=1 to keep it
to about a minute).
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    ("md", """# A two-layer network on CIFAR-10, with `numpy-mlp`

This is the course notebook's story, in its order, with the pasted code replaced by the
`numpy_mlp` package:

1. load CIFAR-10 and preprocess it;
2. the forward pass of a two-layer network, `scores = relu(X W1 + b1) W2 + b2`;
3. the softmax cross-entropy loss and its gradient;
4. the backward pass, checked against finite differences;
5. SGD with momentum;
6. the training loop, with its printouts;
7. the loss and accuracy plots, and the final test accuracy;
8. what the first layer learned, and which test images it gets wrong;
9. a small hyperparameter search, selected on validation.

The dimension letters are the same everywhere: **N** images in a batch, **D** = 3072 =
3 × 32 × 32 values per image, **H** hidden units, **C** = 10 classes.

Set `NUMPY_MLP_DATA` to the folder that holds CIFAR-10 (the batch files, a
`cifar-10-batches-py/` folder or the `.tar.gz`); without it the data is downloaded once
(170 MB, md5-checked) into `~/.cache/numpy-mlp`. `NUMPY_MLP_NOTEBOOK_FAST=1` shortens
every run (the test suite uses it); the numbers quoted in the text are from a full run."""),
    ("code", """import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display
from threadpoolctl import threadpool_limits

from numpy_mlp import (SGD, FullyConnectedNet, TrainConfig, cross_entropy_loss, load_cifar10,
                       preprocess, train)
from numpy_mlp.runs import plots
from numpy_mlp.data.dataset import to_images
from numpy_mlp.nn.gradient_check import numerical_gradient, rel_error
from numpy_mlp.runs.display import TrainingDisplay

%matplotlib inline
plt.rcParams["figure.figsize"] = (8, 4)

FAST = os.environ.get("NUMPY_MLP_NOTEBOOK_FAST") == "1"  # shorter runs, for the test suite
# where the package's plots are written
PICTURES = Path(tempfile.mkdtemp(prefix="numpy-mlp-notebook-"))
rng = np.random.default_rng(0)  # every random choice below comes from an explicit generator
print("fast mode" if FAST else "full runs", "| pictures in", PICTURES)"""),

    ("md", """## 1. Load and preprocess CIFAR-10

`load_cifar10` reads the five training batches and the test batch (checking every
file), and holds out a random validation split of 5,000 training images. The images stay
`uint8` with shape (N, D), channel-first as in the batch files: 1024 red values, then
1024 green, then 1024 blue."""),
    ("code", """# from $NUMPY_MLP_DATA, else ~/.cache/numpy-mlp
data = load_cifar10(val_size=5000, seed=0)
print(data)
print("X_train", data.X_train.shape, data.X_train.dtype, "| y_train", data.y_train.shape)
print("classes:", ", ".join(data.class_names))

fig, axes = plt.subplots(2, 10, figsize=(12, 2.8))
for c, name in enumerate(data.class_names):  # two training images of each class
    for row, i in enumerate(np.flatnonzero(data.y_train == c)[:2]):
        axes[row, c].imshow(to_images(data.X_train[i], data.geometry))
        axes[row, c].axis("off")
    axes[0, c].set_title(name, fontsize=9)
plt.show()"""),
    ("md", """The notebook's preprocessing is **per image**: each image minus its own mean,
divided by its own standard deviation, so every input row has mean 0 and standard deviation 1.
(`preprocess(X, mode="per_channel", stats=channel_stats(X_train))` is the other choice:
statistics of the *training* set, applied to every split.)"""),
    ("code", """X_train, y_train = preprocess(data.X_train), data.y_train  # (45000, 3072) float32
X_val, y_val = preprocess(data.X_val), data.y_val            # (5000, 3072)
X_test, y_test = preprocess(data.X_test), data.y_test        # (10000, 3072)
print("one row: mean %.2e, std %.4f" % (X_train[0].mean(), X_train[0].std()))"""),

    ("md", """## 2. The forward pass

`FullyConnectedNet(hidden_dim=200)` is the two-layer network
`scores = relu(X W1 + b1) W2 + b2`, with `W1` (D, H), `b1` (H,), `W2` (H, C), `b2` (C,).
The parameters live in one plain dict, `model.params`; the weights start as
He-initialised random numbers, the biases at zero. `forward` returns the scores and a
`cache` of what the backward pass needs."""),
    ("code", """model = FullyConnectedNet(input_dim=3072, hidden_dim=200, num_classes=10, seed=0)
print(model)
for k, v in model.params.items():
    print(f"{k}: {v.shape}")

scores, cache = model.forward(X_train[:5])  # (5, 3072) -> (5, 10)
print("scores of 5 images:", scores.shape)"""),

    ("md", """## 3. The loss

`cross_entropy_loss(scores, y)` is the softmax cross-entropy, averaged over the batch, and
its gradient with respect to the scores:

$$L = -\\frac{1}{N}\\sum_i \\log \\frac{e^{s_{i,y_i}}}{\\sum_j e^{s_{ij}}}, \\qquad
\\frac{\\partial L}{\\partial s_{ij}} =
\\frac{1}{N}\\left(\\mathrm{softmax}(s_i)_j - [j = y_i]\\right).$$

Before training the network guesses, so the loss should be close to $\\ln 10 \\approx 2.30$."""),
    ("code", """scores, cache = model.forward(X_train[:500])
loss, dscores = cross_entropy_loss(scores, y_train[:500])
print(f"initial loss {loss:.3f} (ln 10 = {np.log(10):.3f}); dscores {dscores.shape}")"""),

    ("md", """## 4. The backward pass, checked

`model.backward(dscores, cache)` fills `model.grads`, a dict with the same keys and shapes
as `model.params`. A centred finite difference on a tiny float64 network must agree with
it to about 1e-7 or better, for every parameter."""),
    ("code", """tiny = FullyConnectedNet(input_dim=12, hidden_dim=6, num_classes=4, reg=0.1,
                        dtype=np.float64, seed=1)
Xs, ys = rng.standard_normal((5, 12)), rng.integers(0, 4, 5)

def tiny_loss():
    s, _ = tiny.forward(Xs)
    return cross_entropy_loss(s, ys)[0] + tiny.reg_loss()

s, c = tiny.forward(Xs)
tiny.backward(cross_entropy_loss(s, ys)[1], c)
for k in tiny.params:
    err = rel_error(tiny.grads[k], numerical_gradient(tiny_loss, tiny.params[k]))
    print(f"{k}: relative error {err:.1e}")
    assert err < 1e-6, k"""),

    ("md", """## 5. SGD with momentum

The optimizer keeps one velocity `m` per parameter and, at every step, with the gradient
`g` of the minibatch loss:

$$m \\leftarrow \\beta\\, m + g, \\qquad \\theta \\leftarrow \\theta - \\alpha\\, m.$$

`alpha` is the learning rate and `beta` the momentum: `m` is a running sum of past
gradients in which each older gradient counts `beta` times less, so steps along a
direction the gradients agree on grow up to `1 / (1 - beta)` times (10× for 0.9), while
directions where they flip sign cancel out. `beta` must stay below 1: at 1 the sum never
forgets and the steps grow without bound (`SGD` refuses it). One step by hand against
the optimizer:"""),
    ("code", """params = {"w": np.array([1.0, -2.0])}
opt = SGD(params, alpha=0.1, beta=0.9)
g = np.array([0.5, 0.5])
opt.step({"w": g})          # m = 0.9*0 + g = [0.5, 0.5];  w = w - 0.1*m
opt.step({"w": g})          # m = 0.9*[0.5, 0.5] + g = [0.95, 0.95];  w = w - 0.1*m
print(params["w"], "expected", np.array([1.0, -2.0]) - 0.1 * 0.5 - 0.1 * 0.95)
assert np.allclose(params["w"], [1.0 - 0.145, -2.0 - 0.145])"""),

    ("md", """## 6. The training loop

The course notebook's loop: minibatches of 40 images drawn at random (with replacement),
forward, loss, backward, one SGD step; every `num_iters // 20` steps a line with the loss,
and lists of the loss and accuracy history for the plots. (A full run of 2,000 steps takes
about half a minute and reaches about 40% on the test set.)"""),
    ("code", """model = FullyConnectedNet(hidden_dim=200, seed=0)
optimizer = SGD(model.params, alpha=2e-3, beta=0.9)

num_iters = 300 if FAST else 2000
batch_size = 40
print_every = num_iters // 20
num_train = X_train.shape[0]
loss_history, train_acc_history, val_acc_history = [], [], []

with threadpool_limits(1):  # small matrix products: one BLAS thread is fastest here
    for it in range(num_iters):
        idx = rng.choice(num_train, batch_size, replace=True)   # a random minibatch of 40
        x_batch, y_batch = X_train[idx], y_train[idx]           # (40, 3072), (40,)
        scores, cache = model.forward(x_batch)                  # (40, 10)
        loss, dscores = cross_entropy_loss(scores, y_batch)
        model.backward(dscores, cache)                          # fills model.grads
        optimizer.step(model.grads)                             # m = beta*m + g; theta -= alpha*m
        loss_history.append(loss)
        train_acc_history.append((scores.argmax(axis=1) == y_batch).mean())
        if it % print_every == 0 or it == num_iters - 1:
            val_acc_history.append((it, (model.predict(X_val) == y_val).mean()))
            print(f"iteration {it} / {num_iters}: loss {loss:f}, "
                  f"val acc {val_acc_history[-1][1]:.3f}")"""),

    ("md", """## 7. Loss and accuracy plots, and the final accuracy

The minibatch loss is noisy (40 images); its running mean shows the trend. The accuracy
on each minibatch is noisier still; the validation accuracy, measured on 5,000 held-out
images at every printout, is drawn over it."""),
    ("code", """running_mean = lambda v: plots.smooth(v, 50)  # mean of the last 50 values

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
ax1.plot(loss_history, alpha=0.3, label="minibatch")
ax1.plot(running_mean(loss_history), lw=2, label="running mean")
ax1.set(xlabel="iteration", ylabel="loss", title="Loss history")
ax1.legend()
ax2.plot(running_mean(train_acc_history), color="tab:orange",
         label="train (minibatch, running mean)")
its, accs = zip(*val_acc_history)
ax2.plot(its, accs, "o-", color="tab:green", lw=2, label="validation")
ax2.set(xlabel="iteration", ylabel="accuracy", title="Classification accuracy")
ax2.legend()
plt.show()

test_acc = (model.predict(X_test) == y_test).mean()
print(f"final accuracy: validation {accs[-1]:.4f}, test {test_acc:.4f}")"""),

    ("md", """## 8. What the network learned, and where it fails

Each column of `W1` is one hidden unit's weights on the 3,072 input values, so it can be
shown as a 32×32 colour image (rescaled to 0..1). With He initialisation the random
starting weights are larger than what a short run changes, so we show `W1` minus its
initial value: blobs of colour and rough shapes — templates of horses, cars and skies.
(Training the same `seed` again rebuilds the initial weights exactly.)"""),
    ("code", """# the same seed: the same start
W1_init = FullyConnectedNet(hidden_dim=200, seed=0).params["W1"]
display(Image(filename=plots.plot_first_layer_weights(model.params["W1"], PICTURES / "weights.png",
                                                      W1_init=W1_init, count=50,
                                                      geometry=data.geometry)))

pred = model.predict(X_test[:24])
display(Image(filename=plots.plot_predictions(to_images(data.X_test[:24], data.geometry),
                                              y_test[:24], pred, data.class_names,
                                              PICTURES / "predictions.png")))"""),

    ("md", """## The same, with the package's trainer

`train(config, data)` is the loop above made reusable: minibatches *without* replacement
(a new shuffle each epoch), a learning-rate schedule, an evaluation every 1/20 of the
run, and it keeps the parameters with the best validation accuracy. It takes the uint8
data and preprocesses each batch itself, and returns the model and a history of plain
lists. Every field of `TrainConfig` is a flag of `numpy-mlp train`. The run below is
short; `numpy-mlp train` with its defaults (a wider network, more epochs, flipped images;
a few minutes on 2 cores) goes well past it (see the README)."""),
    ("code", """config = TrainConfig(hidden_dim=(200,), alpha=5e-3, beta=0.9, batch_size=128,
                     num_iters=300 if FAST else 3000, schedule="cosine", evals=10)
print(config)
lines = TrainingDisplay(config.num_iters, say=print)  # prints a line at each evaluation
result = train(config, data, on_eval=lines.on_eval)

display(Image(filename=plots.plot_accuracy(result.history, PICTURES / "accuracy.png")))
test_acc = (result.model.predict(X_test) == y_test).mean()  # X_test: per_image, as in the config
print(f"best validation {result.best_val_acc:.4f} at step {result.best_step}; "
      f"test {test_acc:.4f}")"""),

    ("md", """## 9. Hyperparameter search

A search is a loop over `train()`: a few settings, each trained on the training split and
scored on the **validation** split; the best one is then evaluated on the test set,
once."""),
    ("code", """steps = 150 if FAST else 1500
candidates = [dict(alpha=a, hidden_dim=(h,), reg=r)
              for a, h, r in [(1e-3, 200, 0.0), (5e-3, 200, 0.0), (5e-3, 400, 1e-3),
                              (2e-2, 200, 0.0)]]
results = []
for c in candidates:
    r = train(TrainConfig(num_iters=steps, batch_size=128, evals=5, **c), data)
    results.append((r.best_val_acc, c, r))
    print(f"{c}: validation {r.best_val_acc:.4f}")

best_val, best_c, best = max(results, key=lambda t: t[0])
test_acc = (best.model.predict(X_test) == y_test).mean()  # the test set, touched once
print(f"best: {best_c} with validation {best_val:.4f}; its test accuracy {test_acc:.4f}")"""),

    ("md", """The same idea at scale is `numpy_mlp.search` (the `numpy-mlp search` command),
built on Optuna: it samples settings from ranges (TPE by default), stops poor trials early from
their validation accuracy, can run several worker processes or machines on one study, and
tests the winner once. Here three short trials over the learning rate and the L2
strength:"""),
    ("code", """import warnings
# Optuna imports tqdm's notebook bar; unused here
warnings.filterwarnings("ignore", message="IProgress not found")
from numpy_mlp.search import SearchSettings, run_search

settings = SearchSettings(
    out=str(PICTURES / "search"), n_trials=3 if FAST else 20,
    fixed={"hidden_dim": [200], "num_iters": 150 if FAST else 1500, "batch_size": 128, "evals": 5},
    space={"alpha": {"low": 1e-3, "high": 3e-2, "log": True},
           "reg": {"low": 1e-5, "high": 1e-2, "log": True}})
found = run_search(settings)
print(f"search: validation {found['val_accuracy']:.4f}, "
      f"test {found['test_accuracy']:.4f} with {found['params']}")"""),

    ("md", """## From the command line

Everything above is also one command, which writes a run folder with the config, the
metrics, the model, the pictures and a self-contained `report.html`:

```bash
numpy-mlp train --hidden-dim 200 --alpha 5e-3 --beta 0.9 --epochs 12 --out runs/first
numpy-mlp evaluate --model runs/first/model.npz
numpy-mlp predict --model runs/first/model.npz my_cat.jpg
```"""),
]


def build():
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src)
                for kind, src in CELLS]
    for i, cell in enumerate(nb.cells):  # stable ids: regenerating gives the same file
        cell["id"] = f"cell-{i:02d}"
    return nb


if __name__ == "__main__":
    path = Path(__file__).with_name("two_layer_net.ipynb")
    nbformat.write(build(), path)
    print(f"wrote {path}")
