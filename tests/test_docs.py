"""The README and docs/ keep their promises: links resolve, commands exist, the README stays short.

Nothing here runs a command of the README; each test checks one thing a reader would trip
over: a link to a missing file or heading, a subcommand or flag that does not exist, a
command that only works after an unstated step, a second spelling of the data path.
"""

import re
import shlex
from pathlib import Path

import pytest
from conftest import SHARED_CIFAR

from numpy_mlp.cli.commands import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
README_LIMIT = 12_000  # bytes: a newcomer's page, the rest lives in docs/

# the README's first code block, exactly: set up and run the main job; set up and run the tests
FIRST_COMMANDS = [
    "python3 -m venv .venv && .venv/bin/pip install -e . && "
    ".venv/bin/numpy-mlp train --data-dir ../shared/data/cifar-10-batches-py",
    "bash scripts/test.sh",
]
DATA_DIR = "../shared/data/cifar-10-batches-py"  # relative to the repository root

FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.S | re.M)  # also in a list
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(text):
    """Markdown without its fenced code blocks and inline code, where links are not links."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    seen, out = {}, set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        if m := re.match(r"#{1,6}\s+(.*)", line):
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def code_lines(text):
    """Shell lines of the fenced blocks, continuations joined, prompts and comments removed."""
    lines = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("$ "):
                line = line[2:]
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def help_text(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0, f"numpy-mlp {command} is not a subcommand"
    return capsys.readouterr().out


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_docs_exist_and_the_readme_links_each():
    names = {p.name for p in DOCS}
    assert {"performance.md", "search.md", "reliability.md", "results.md",
            "development.md"} <= names
    linked = {Path(t.partition("#")[0]).name for t in LINK.findall(prose(README.read_text()))}
    assert names <= linked, f"not linked from the README: {sorted(names - linked)}"


def test_readme_is_short():
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail into docs/"


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    before = text[:text.index("```")]
    assert [line for line in before.splitlines() if line.strip()] == ["# numpy-mlp"]
    assert code_lines(FENCE.search(text).group(0)) == FIRST_COMMANDS
    assert (ROOT / "scripts/test.sh").is_file()


def test_every_readme_command_is_a_real_subcommand_with_real_flags(capsys):
    text = README.read_text()
    named = set(re.findall(r"numpy-mlp ([a-z][a-z-]*)", text))
    assert {"train", "evaluate", "predict", "report", "search"} <= named
    helps = {command: help_text(command, capsys) for command in named}
    unknown = []
    for line in code_lines(text):
        for part in line.split("&&"):
            words = shlex.split(part)
            if len(words) > 1 and words[0].endswith("numpy-mlp"):
                flags = [w.split("=", 1)[0] for w in words[2:] if w.startswith("--")]
                unknown += [f"{words[1]} {f}" for f in flags if f not in helps[words[1]]]
    assert not unknown, f"flags the README uses that --help does not list: {unknown}"


def test_readme_commands_work_as_pasted_after_the_first():
    """Each numpy-mlp command names the venv's script; the data path has one spelling."""
    lines = code_lines(README.read_text())
    bare = [line for line in lines if re.match(r"numpy-mlp\b", line)]
    assert not bare, f"needs .venv/bin/ or an activated venv: {bare}"
    paths = set(re.findall(r"--data-dir[ =](\S+)", README.read_text()))
    assert paths == {DATA_DIR}, paths
    assert (ROOT / DATA_DIR).resolve() == SHARED_CIFAR.resolve()
    # load_cifar10 in the API example reads the same folder
    assert set(re.findall(r"load_cifar10\(\"([^\"]+)\"", README.read_text())) <= {DATA_DIR}


@pytest.mark.slow
def test_readme_python_blocks_run_as_pasted(tmp_path):
    """The README's API blocks, pasted one after the other into Python in a folder beside
    ../shared, as the repository is, run on the real data (the face resolves its names
    lazily; this is its promise). The folder is a new one: what they save stays out of the
    repository."""
    import subprocess
    import sys

    assert SHARED_CIFAR.is_dir(), f"the real CIFAR-10 is missing at {SHARED_CIFAR}"
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)
    assert len(blocks) >= 2, "the README's API blocks are gone"
    code = "\n".join(blocks) + "\nprint('accuracy', result.best_val_acc)\n"
    (tmp_path / "shared").symlink_to(SHARED_CIFAR.parents[1])
    (tmp_path / "here").mkdir()
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "here",
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split()[-1]) > 0.2  # two epochs of the notebook's net learn
    assert (tmp_path / "here" / "runs" / "mine.npz").is_file()  # saved where the README says


def test_readme_command_table_lists_exactly_the_cli_commands():
    """The README's table of commands is where a newcomer looks for what the tool does: a
    command missing there (export was) is one nobody finds."""
    from numpy_mlp.cli.commands import build_parser

    text = README.read_text()
    table = text[text.index("| command | what it does |"):]
    table = table[:table.index("\n\n")]
    listed = re.findall(r"^\| `numpy-mlp ([a-z-]+)", table, re.M)
    assert len(listed) == len(set(listed)), listed
    assert set(listed) == set(build_parser().commands)
