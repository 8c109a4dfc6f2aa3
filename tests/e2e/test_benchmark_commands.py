"""Every command in BENCHMARKS.md's "Recipes" block is valid as written and applies its recipe (issue 33).

Each `dlpipe run` line of that block runs here on a small slice of its data (a few images per class, a few dozen
sentences, one epoch; MPNet as the tiny random model of tests/models/mpnet_fixtures.py), and the run's saved config
must equal what the command as written resolves to, apart from the slice's own keys. The figures themselves are
benchmarks, not tests.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import SENTENCES
from dlpipe.data import builtin_datasets as bd
from dlpipe.pipelines.api import resolve_config
from dlpipe.pipelines.catalog import get_pipeline
from dlpipe.pipelines.cli import main
from assets import require

BENCHMARKS = Path(__file__).resolve().parents[2] / "BENCHMARKS.md"
# the keys a slice overrides, per pipeline (everything else must be the command's own resolution)
SLICES = {
    "image-classify": ["load.max_per_class=6", "train.epochs=1", "train.progress=none", "train.tensorboard=false",
                       "export.formats=[keras]", "export.parity_sample=8"],
    "sentiment": ["train.epochs=1", "train.progress=none", "preprocess.sequence_length=12",
                  "export.formats=[keras]", "export.parity_sample=8"],
    "gan": ["load.limit=128", "train.epochs=1", "train.feature_epochs=1", "train.fid_samples=64",
            "train.progress=none", "export.parity_sample=4"],
}


def recipe_commands() -> list[str]:
    """The `dlpipe run` lines of the fenced block under BENCHMARKS.md's '## Recipes' heading."""
    text = BENCHMARKS.read_text(encoding="utf-8")
    section = text.split("\n## Recipes", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("dlpipe run ")]


def test_the_recipes_block_lists_the_readme_commands():
    commands = recipe_commands()
    readme = (BENCHMARKS.parent / "README.md").read_text(encoding="utf-8")
    assert len(commands) >= 3
    for command in commands:
        if "builtin:" in command:  # the classic-dataset commands are the README's own, word for word
            assert command in readme, command


@pytest.mark.parametrize("command", recipe_commands())
def test_a_benchmark_command_runs_on_a_slice_with_its_recipe(command, tmp_path, monkeypatch):
    words = shlex.split(command)[2:]  # drop 'dlpipe run'
    pipeline, options = words[0], _options(words[1:])
    sets = options.pop("--set", [])
    data = options["--data"][0]
    if data.startswith("builtin:fashion-mnist"):
        require(all((bd.FASHION_MNIST_DIR / n).is_file() for n in bd.FASHION_MNIST_FILES.values()),
                f"Fashion-MNIST (Debian package {bd.FASHION_MNIST_PACKAGE})", "scripts/setup.sh installs it as root")
        monkeypatch.setenv("DLPIPE_CACHE", str(tmp_path / "cache"))
    else:
        data = str(_sentence_slice(SENTENCES / data, tmp_path))
        sets = [_sliced_path(s, tmp_path) for s in sets]
    if "model.architecture=mpnet" in sets:
        sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
        from mpnet_fixtures import write_tiny_mpnet

        write_tiny_mpnet(tmp_path / "all-mpnet-base-v2")
        monkeypatch.setenv("DLPIPE_MPNET_DIR", str(tmp_path / "all-mpnet-base-v2"))
    out = tmp_path / "run"
    slice_sets = SLICES[pipeline]
    args = ["run", pipeline, "--data", data, "--out", str(out), *[f"--set={s}" for s in [*sets, *slice_sets]]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    if get_pipeline(pipeline).recipes:  # the GAN has none: its defaults are its measured setting
        assert "recipe " in result.output  # the run says which recipe it applied
    saved = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    expected = resolve_config(pipeline, sets=sets, data=data).to_dict()
    for dotted in slice_sets:
        section, key = dotted.split("=")[0].split(".")
        saved[section].pop(key), expected[section].pop(key)
    assert saved == expected


def _options(words: list[str]) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for flag, value in zip(words[::2], words[1::2]):
        options.setdefault(flag, []).append(value)
    return options


def _sentence_slice(source: Path, folder: Path, count: int = 40) -> Path:
    """The first `count` lines of each label of a shared sentence file, as a file of its own."""
    lines = source.read_text(encoding="utf-8").splitlines()
    picked: list[str] = []
    for label in ("0", "1"):
        picked += [line for line in lines if line.rstrip().endswith("\t" + label)][: count // 2]
    target = folder / source.name
    target.write_text("\n".join(picked) + "\n", encoding="utf-8")
    return target


def _sliced_path(setting: str, folder: Path) -> str:
    key, _, value = setting.partition("=")
    if key.endswith("_path") and not Path(value).is_absolute():
        return f"{key}={_sentence_slice(SENTENCES / value, folder)}"
    return setting
