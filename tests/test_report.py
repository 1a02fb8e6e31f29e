"""The run folder's pictures and its self-contained report.html, opened in headless Chromium.

A tiny run on fixture data (``tests/fixtures_cifar.py``) through the real command line
writes the folder once for the module; Chromium (Debian's ``chromium``, installed by
scripts/test.sh) must be present: the test fails, never skips, without it.
"""

import re
import shutil
import subprocess

import numpy as np
import pytest
from fixtures_cifar import write_cifar_dir
from PIL import Image

from numpy_mlp.cli.commands import main
from numpy_mlp.runs.report import PICTURES, render_report, write_report

PICTURE_NAMES = [name for name, _ in PICTURES]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    write_cifar_dir(root / "cifar", n_per_batch=20, n_test=40)
    out = root / "run"
    code = main(["train", "--data-dir", str(root / "cifar"), "--offline", "--out", str(out),
                 "--hidden-dim", "16", "--num-iters", "6", "--batch-size", "16", "--val-size", "20",
                 "--evals", "3", "--quiet"])
    assert code == 0
    return out


def test_train_writes_every_picture_and_the_report(run_dir):
    for name in PICTURE_NAMES + ["report.html"]:
        assert (run_dir / name).stat().st_size > 1000, name
    with Image.open(run_dir / "predictions.png") as im:
        assert im.size[0] > 600 and im.size[1] > 300  # 32 images in 4 rows of 8


def test_report_is_one_file_with_every_picture_embedded(run_dir):
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == len(PICTURE_NAMES)
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    # nothing to fetch: no script, no stylesheet link, no other URL
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    # the config and the metrics are on the page
    assert "hidden_dim" in page and "per_image" in page and "Per-class test accuracy" in page
    assert "truck" in page and "test accuracy" in page


def test_report_escapes_what_it_shows(tmp_path, run_dir):
    for f in ("config.json", "metrics.json"):
        shutil.copy(run_dir / f, tmp_path / f)
    (tmp_path / "train.log").write_text("step 1 <script>alert(1)</script>\n")
    page = render_report(tmp_path)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_report_command_rewrites_it_and_refuses_a_folder_without_a_run(tmp_path, run_dir, capsys):
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("numpy-mlp: error:") and "no config.json" in err and err.count("\n") == 1


CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const sizes = imgs.map(i => (i.complete && i.naturalWidth > 0)
    ? i.naturalWidth + "x" + i.naturalHeight : "broken");
  const out = document.createElement("pre");
  out.id = "image-check";
  out.textContent = "IMAGES " + sizes.join(" ") + " END";
  document.body.appendChild(out);
});
</script></body>"""


def chromium_dom(page, tmp_path):
    """The DOM of ``page`` after loading it in headless Chromium, as text."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("headless Chromium is needed to check the report: apt-get install chromium "
                    "(scripts/test.sh installs it)")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=10000",
           "--dump-dom", page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_images_load_in_headless_chromium(run_dir, tmp_path):
    # a copy of the report with a check script added: it lists every image's decoded size
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", CHECK_SCRIPT), encoding="utf-8")
    dom = chromium_dom(checked, tmp_path)
    m = re.search(r"<pre id=\"image-check\">IMAGES (.*?) END</pre>", dom)
    assert m, dom[-2000:]
    sizes = m.group(1).split()
    expected = []
    for name in PICTURE_NAMES:
        with Image.open(run_dir / name) as im:
            expected.append(f"{im.size[0]}x{im.size[1]}")
    assert sizes == expected  # every picture decoded, at its own size, in the page's order


def test_a_broken_image_would_be_caught(run_dir, tmp_path):
    """The check above can fail: a damaged data URI shows up as 'broken'."""
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    page = page.replace("data:image/png;base64,iVBOR", "data:image/png;base64,AAAAA", 1)
    checked = tmp_path / "broken.html"
    checked.write_text(page.replace("</body>", CHECK_SCRIPT), encoding="utf-8")
    sizes = re.search(r"<pre id=\"image-check\">IMAGES (.*?) END</pre>",
                      chromium_dom(checked, tmp_path)).group(1).split()
    assert sizes[0] == "broken" and "broken" not in sizes[1:]


def test_evaluate_writes_its_pictures_into_out(run_dir, tmp_path, capsys):
    data = run_dir.parent / "cifar"
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(run_dir / "model.npz"), "--data-dir", str(data),
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for name in ("predictions.png", "confusion.png", "weights.png"):
        assert (out / name).stat().st_size > 1000
        assert name in text
    assert "test accuracy" in text
    # the weights picture shows what training changed: the init is rebuilt from the saved seed
    from numpy_mlp.data.cifar10 import load_cifar10
    from numpy_mlp.runs.evaluate import initial_W1
    from numpy_mlp.training.config import TrainConfig
    from numpy_mlp.training.loop import build
    from numpy_mlp.training.model_file import load_model

    saved = load_model(run_dir)  # the run folder names its model.npz
    model = saved.model
    W1_init = initial_W1(saved.config, model)
    assert W1_init is not None and not np.array_equal(W1_init, model.params["W1"])
    assert np.abs(model.params["W1"] - W1_init).max() < 0.5 * np.abs(W1_init).max()  # 6 small steps
    config = TrainConfig.from_dict(saved.config)
    assert config.seed == 0
    # the same weights as the whole run's start, rebuilt without the data
    d = load_cifar10(data, val_size=config.val_size, download=False, progress=False)
    np.testing.assert_array_equal(W1_init, build(config, d).model.params["W1"])
    assert initial_W1({}, model) is None  # no config: no guess


def test_write_report_refuses_a_missing_folder(tmp_path):
    from numpy_mlp.errors import UserError

    with pytest.raises(UserError, match="not a folder"):
        write_report(tmp_path / "nope")
