"""The README works as written: its quick-start test command is what .ci/run runs; every ``fasterpose`` command it
shows parses with the real command line (subcommand, options, shipped config names, config keys); the photo example
(command and Python) runs, on a tiny model instead of the downloaded one; its links to sections resolve."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PHOTO = ROOT / "tests" / "data" / "people" / "messi5.jpg"


def _section(title: str) -> str:
    text = README.read_text()
    assert f"\n## {title}\n" in text, f"README has no section '## {title}'"
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def _quick_start_commands() -> list[str]:
    block = _blocks(_section("Quick start"), "(?:bash|sh)")[0]
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def _fasterpose_commands(text: str) -> list[list[str]]:
    """Every ``fasterpose ...``, ``python3 -m fasterpose ...`` and ``torchrun ... -m fasterpose.cli ...`` command in
    the bash blocks of ``text``, as its argument list after the program (continuation lines joined)."""
    commands = []
    for block in _blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            while tokens:  # `a && b` is two commands
                cut = tokens.index("&&") if "&&" in tokens else len(tokens)
                argv, tokens = tokens[:cut], tokens[cut + 1:]
                if argv and argv[0] == "fasterpose":
                    commands.append(argv[1:])
                for i, token in enumerate(argv[:-1]):
                    if token == "-m" and argv[i + 1] in ("fasterpose", "fasterpose.cli"):
                        commands.append(argv[i + 2:])
    return commands


def test_quick_start_is_two_commands() -> None:
    commands = _quick_start_commands()
    assert len(commands) == 2, commands
    assert commands[0].endswith("fasterpose demo")
    assert "torch==2.13.0" in commands[0] and "torch==2.13.0" in commands[1]
    assert "pytest" in commands[1] and "ruff" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = _quick_start_commands()[1]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_readme_is_a_short_guide_with_the_python_api_on_its_first_screen() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 260, f"README.md has {len(lines)} lines; measurements belong in docs/results.md"
    assert any("Contents" in line for line in lines[:20])
    first = next(i for i, line in enumerate(lines) if "fasterpose.Predictor(" in line)
    assert first < 80, f"the Predictor example starts at line {first + 1}"


def test_every_command_in_the_readme_parses() -> None:
    """A renamed option, subcommand, shipped config or config key breaks the README: caught here, not by a user."""
    from fasterpose.cli import build_parser
    from fasterpose.engine.config import find_config, load_config

    commands = _fasterpose_commands(README.read_text())
    assert len(commands) >= 25, commands  # the README shows about thirty; a parsing slip would find none
    assert {c[0] for c in commands} >= {"demo", "predict", "train", "eval", "export", "eval-results", "synth"}
    parser = build_parser()
    for argv in commands:
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"README command does not parse: fasterpose {shlex.join(argv)}")
        if args.command == "train" and args.config:
            load_config(args.config, args.opt)  # shipped config name and every --opt key
        elif args.command == "eval" and args.config:
            find_config(args.config)


def test_readme_command_parser_finds_continued_and_chained_commands() -> None:
    text = ("```bash\nfasterpose train x --opt a=1 \\\n    --opt b=2   # note\n"
            "pip x && python3 -m fasterpose demo\n```\n")
    assert _fasterpose_commands(text) == [["train", "x", "--opt", "a=1", "--opt", "b=2"], ["demo"]]


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", path.read_text(), re.M)}


def test_links_to_sections_resolve() -> None:
    """The contents and every figure's link to docs/results.md land on a heading that exists."""
    links = re.findall(r"\]\(((?:docs/[\w.]+\.md)?)#([\w-]+)\)", README.read_text())
    assert len(links) >= 15, links
    for target, anchor in links:
        assert anchor in _anchors(ROOT / target if target else README), f"README link {target}#{anchor} is broken"
    for target in re.findall(r"\]\(((?:docs|benchmarks|tests)/[^)#]+)[)#]", README.read_text()):
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


@pytest.fixture
def photo_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copyfile(PHOTO, tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_photo_python_example_runs(tiny_model: Path, photo_folder: Path) -> None:
    """The five lines under "Poses on your own photo", with the tiny test model in place of the downloaded one."""
    block = next(b for b in _blocks(_section("Poses on your own photo"), "python") if "Predictor(" in b)
    assert len(block.strip().splitlines()) == 5, block
    code, n = re.subn(r'Predictor\("[^"]+"\)', f"Predictor({str(tiny_model)!r})", block)
    assert n == 1, block
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    from fasterpose.geometry import box_to_center_scale

    keypoints = namespace["people"][0]["keypoints"]
    height, width = namespace["image"].shape[:2]
    assert keypoints.shape == (17, 3) and np.isfinite(keypoints).all()
    assert ((keypoints[:, 2] >= 0) & (keypoints[:, 2] <= 1)).all()
    # a random model's points may fall anywhere in the crop: the whole-photo box, padded to the input's aspect
    input_h, input_w = namespace["predictor"].input_size
    center, scale = box_to_center_scale([0, 0, width, height], input_w / input_h)
    assert (np.abs(keypoints[:, :2] - center) <= scale / 2 + 1).all(), keypoints


def test_photo_command_runs(tiny_model: Path, photo_folder: Path) -> None:
    """The README's first predict command, with the tiny model in place of the published weights."""
    from fasterpose.detect.hog import hog_available

    if not hog_available():
        pytest.skip("this OpenCV has no HOG people detector (the command's default box source)")
    from fasterpose.cli import main

    argv = _fasterpose_commands(_section("Poses on your own photo"))[0]
    assert argv[:2] == ["predict", "photo.jpg"] and "--weights" in argv, argv
    argv[argv.index("--weights") + 1] = str(tiny_model)
    assert main(argv) == 0
    out = photo_folder / argv[argv.index("--out") + 1]
    assert (out / "photo.jpg").is_file() and (out / "results.json").is_file()
