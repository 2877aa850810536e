from __future__ import annotations

import argparse
import os
import re

import pytest

from errorset.cli import build_parser, main

from .conftest import mlflow_client
from .imagefolders import tar_tree, write_tree


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _commands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_the_parser_has_every_documented_command():
    # the README's table of commands and the MLproject entry points name these
    assert set(_commands()) == {
        "prepare",
        "train",
        "evaluate",
        "analyze",
        "attack",
        "report",
        "summary",
        "sweep",
        "eval-corruptions",
        "make-corruptions",
        "compare-corruptions",
        "config",
    }


def test_help_lists_every_command_with_its_purpose(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    helps = {a.dest: a.help for a in build_parser()._subparsers._group_actions[0]._choices_actions}
    for command in _commands():
        assert re.search(rf"^\s+{re.escape(command)}\s+{re.escape(helps[command][:20])}", text, re.M), command
    assert "--set KEY=VALUE" in text


@pytest.mark.parametrize("command", sorted(_commands()))
def test_each_command_describes_itself_and_takes_the_shared_options(capsys, command):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    description = _commands()[command].description
    assert description and len(description) > 40 and " ".join(description.split()[:5]) in " ".join(text.split())
    assert "--params FILE" in text and "--set KEY=VALUE" in text


def test_overrides_accumulate_in_order():
    args = build_parser().parse_args(["train", "--resume", "--set", "a=1", "--set", "b=2 c=3"])
    assert args.resume is True and args.command == "train"
    assert args.overrides == ["a=1", "b=2 c=3"]


def test_config_command_prints_the_resolved_config(capsys, workdir):
    code, out, _ = run_cli(capsys, "config", "--set", "data.name=digits", "--set", "profile=paper")
    assert code == 0
    assert "name: mlp" in out and "epochs: 200" in out


@pytest.fixture
def digits_args(data_root):
    return ["--no-progress", "--set", "data.name=digits", "--set", f"data.root={data_root}", "--set", "profile=smoke"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.name=vgg99", r"model\.name: unknown model 'vgg99'; valid models: linear, mlp"),
        ("data.name=mnist", r"data\.name: unknown dataset 'mnist'; valid datasets: cifar10, digits, imagefolder"),
        ("train.mode=cutout", r"train\.mode: unknown training mode 'cutout'; valid training modes: adversarial, clean"),
        ("train.sigma_max=-0.5", r"train\.sigma_max: expected a number >= 0, got -0\.5"),
    ],
)
def test_bad_input_gets_one_line_naming_the_parameter(capsys, workdir, digits_args, override, message):
    code, _, err = run_cli(capsys, "train", *digits_args, "--set", override)
    assert code == 2
    assert re.fullmatch(rf"errorset: error: {message}.*\n", err), err
    assert "Traceback" not in err
    assert not (workdir / "models").exists()


def test_missing_and_corrupt_archives(capsys, workdir, tmp_path):
    code, _, err = run_cli(capsys, "prepare", "--set", f"data.cifar10.archive={tmp_path / 'missing.tar.gz'}")
    assert code == 2 and re.fullmatch(r"errorset: error: data\.cifar10\.archive: no such file or folder .*\n", err)
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b" + os.urandom(2000))
    code, _, err = run_cli(capsys, "prepare", "--no-progress", "--set", f"data.cifar10.archive={junk}")
    assert code == 2
    assert re.fullmatch(r"errorset: error: data\.cifar10\.archive: .*junk\.tar\.gz is not a readable archive .*\n", err)


def test_prepare_and_train_from_an_imagefolder_archive(capsys, workdir, tmp_path):
    tree = tmp_path / "t"
    write_tree(tree, ["a", "b"], {"train": 8, "test": 4}, size=(8, 8))
    archive = tar_tree(tree, tmp_path / "set.tgz")
    args = [
        "--no-progress",
        "--set",
        "data.name=imagefolder",
        "--set",
        f"data.imagefolder.path={archive}",
        "--set",
        "profile=smoke",
        "--set",
        "model.name=linear",
        "--set",
        "tracking.log_model=false",
    ]
    code, out, _ = run_cli(capsys, "prepare", *args)
    assert code == 0 and re.search(r"prepared imagefolder: data/imagefolder\.npz \(md5 [0-9a-f]{32}\)", out)
    code, out, _ = run_cli(capsys, "train", *args)
    assert code == 0
    run_id = re.search(r"mlflow run id: ([0-9a-f]{32})", out).group(1)
    assert mlflow_client().get_run(run_id).info.run_name == "clean · train · imagefolder/linear"
    assert (workdir / "models/imagefolder/linear/clean/model.pt").exists()
