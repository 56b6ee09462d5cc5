"""README.md and docs/ against the code: the README stays short and its index names pages that exist, every
relative link resolves, every command line of a ```bash block parses with today's parsers (the entry scripts'
`ops.opts.parse_args`, each script's own argparse), every ```python block compiles, and the blocks marked
`<!-- runnable -->` run, in order, in a fresh folder per page, on the tiny data they make themselves."""

from __future__ import annotations

import argparse
import os
import re
import runpy
import shlex
import subprocess
import sys
from dataclasses import dataclass

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(
    os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md")
)
ENTRY_SCRIPTS = {"main.py": "main", "main_nViewEval.py": "nview", "test_early_exit.py": "early_exit"}
RUNNABLE = "<!-- runnable -->"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


@dataclass
class Block:
    page: str
    line: int
    lang: str
    text: str
    runnable: bool


def blocks(page: str) -> list[Block]:
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        text = f.read()
    found = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip().splitlines()
        found.append(
            Block(
                page,
                text.count("\n", 0, m.start()) + 1,
                m.group(1),
                m.group(2),
                bool(before) and before[-1].strip() == RUNNABLE,
            )
        )
    return found


def command_lines(block: Block) -> list[tuple[int, list[str]]]:
    """(line number, argv) of each command of a bash block: continuation lines joined, comments dropped, variables
    set earlier in the block expanded, optional parts (`[...]`) and placeholders (`<...>`) left out."""
    commands, variables, pending, start = [], {}, "", 0
    for offset, raw in enumerate(block.text.splitlines()):
        if not pending:
            start = block.line + 1 + offset
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line, pending = pending + raw, ""
        for part in re.split(r"\s&&\s", line):
            tokens = shlex.split(part, comments=True)
            if len(tokens) == 1 and re.fullmatch(r"[A-Za-z_]\w*=\S*", tokens[0]):
                name, value = tokens[0].split("=", 1)
                variables[name] = value
                continue
            tokens = [re.sub(r"\$(\w+)", lambda v: variables.get(v.group(1), v.group(0)), t) for t in tokens]
            if tokens:
                commands.append((start, _drop_optional(tokens)))
    return commands


def _drop_optional(tokens: list[str]) -> list[str]:
    kept, depth, angle = [], 0, False
    for t in tokens:
        if t.startswith("<"):
            angle = True
        if depth == 0 and not angle and not t.startswith("["):
            kept.append(t)
        depth += t.count("[") - t.count("]")
        if t.endswith(">"):
            angle = False
    return kept


def entry_of(argv: list[str]) -> tuple[str, list[str]] | None:
    """(what runs, its arguments) for the commands this test checks: python FILE / -m MODULE, torchrun FILE,
    bash scripts/demo.sh (its options are scripts/demo.py's); None for the others (pip, pytest, shell)."""
    if argv[0] == "torchrun":
        i = next(i for i, t in enumerate(argv) if t.endswith(".py"))
        return argv[i], argv[i + 1 :]
    if argv[0] == "bash" and len(argv) > 1 and argv[1] == "scripts/demo.sh":
        return "scripts/demo.py", argv[2:]
    if argv[0] in ("python", "python3") and len(argv) > 1:
        if argv[1] == "-m":
            return None if argv[2] in ("pytest", "pip", "venv") else ("-m " + argv[2], argv[3:])
        if argv[1].endswith(".py"):
            return argv[1], argv[2:]
    return None


class _Parsed(Exception):
    pass


def parse_with_script_parser(target: str, args: list[str], monkeypatch) -> None:
    """Runs the script or module until its argparse has parsed `args` (the outermost parse call), then stops it."""
    depth = [0]

    def stopping(original):
        def wrapper(self, *a, **k):
            depth[0] += 1
            try:
                result = original(self, *a, **k)
            finally:
                depth[0] -= 1
            if depth[0] == 0:
                raise _Parsed
            return result

        return wrapper

    for name in ("parse_args", "parse_known_args", "parse_intermixed_args"):
        monkeypatch.setattr(argparse.ArgumentParser, name, stopping(getattr(argparse.ArgumentParser, name)))
    monkeypatch.setattr(sys, "argv", [target, *args])
    with pytest.raises(_Parsed):
        if target.startswith("-m "):
            runpy.run_module(target[3:], run_name="__main__")
        else:
            runpy.run_path(os.path.join(ROOT, target), run_name="__main__")


COMMANDS = [
    pytest.param(page, line, argv, id=f"{page}:{line}")
    for page in PAGES
    for block in blocks(page)
    if block.lang == "bash"
    for line, argv in command_lines(block)
    if entry_of(argv) is not None
]


def test_readme_is_short_and_its_index_names_pages_that_exist():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert len(readme.splitlines()) <= 200
    linked = set(re.findall(r"\]\((docs/[\w.]+\.md)", readme))
    on_disk = {p for p in PAGES if p.startswith("docs/")}
    assert linked == on_disk, (sorted(linked - on_disk), sorted(on_disk - linked))
    assert os.path.isfile(os.path.join(ROOT, "LICENSE"))


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        text = FENCE.sub("", f.read())
    base = os.path.dirname(os.path.join(ROOT, page))
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target) or target.startswith("#"):
            continue
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(base, path))
        assert os.path.exists(full), f"{page}: link to {target}"
        if anchor and path.endswith(".md"):
            with open(full, encoding="utf-8") as f:
                headings = [_anchor(h) for h in re.findall(r"^#+ (.*)$", f.read(), re.M)]
            assert anchor in headings, f"{page}: no heading #{anchor} in {path}"


def _anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_command_lines_are_found():
    """The parse test below covers the pages' command lines: the README's training, evaluation and predict lines
    and the V1 `key=value` lines among them."""
    seen = {
        (page, argv[1] if argv[0] != "torchrun" else "torchrun")
        for page, _, argv in (p.values for p in COMMANDS)
    }
    assert {("README.md", "main.py"), ("README.md", "torchrun"), ("README.md", "main_nViewEval.py")} <= seen
    assert ("README.md", "scripts/predict.py") in seen and ("docs/adafocus_v1.md", "main.py") in seen
    assert len(COMMANDS) >= 60


@pytest.mark.parametrize("page, line, argv", COMMANDS)
def test_command_line_parses(page, line, argv, monkeypatch):
    target, args = entry_of(argv)
    if target in ENTRY_SCRIPTS:
        from ops.opts import parse_args

        try:
            parse_args(args, script=ENTRY_SCRIPTS[target])
        except SystemExit as exc:  # --print_config prints and exits 0; a parse error exits 2
            assert exc.code == 0, f"{page}:{line}: {shlex.join(argv)}"
    else:
        parse_with_script_parser(target, args, monkeypatch)


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_compile(page):
    for block in blocks(page):
        if block.lang == "python":
            compile(block.text, f"{page}:{block.line}", "exec")


RUNNABLE_PAGES = [p for p in PAGES if any(b.runnable for b in blocks(p))]


def test_the_readme_has_runnable_blocks():
    assert "README.md" in RUNNABLE_PAGES


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_runnable_blocks_run(page, tmp_path):
    """Each runnable block of the page, in order, in one folder that holds links to the entry scripts and scripts/
    (so commands run as written from the repository's root), with `python` this interpreter."""
    for name in [*ENTRY_SCRIPTS, "scripts"]:
        os.symlink(os.path.join(ROOT, name), tmp_path / name)
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    os.symlink(sys.executable, bin_dir / "python")
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=ROOT,
        OMP_NUM_THREADS="1",
        ADAFOCUS_DATA=str(tmp_path / "data"),
    )
    for block in (b for b in blocks(page) if b.runnable):
        argv = (
            ["bash", "-euo", "pipefail", "-c", block.text]
            if block.lang == "bash"
            else [sys.executable, "-c", block.text]
        )
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{page}:{block.line}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
