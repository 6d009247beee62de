"""`foundation.train.compose`: a config saved before its class moved (a run's config.yaml, a
checkpoint's run config, a site's own config tree) still loads, and resuming from it reports no
change of class."""

from __future__ import annotations

import importlib
import shutil

import pytest

from foundation.data.sources.in_memory import FileDataConfig
from foundation.errors import UserError
from foundation.train.compose import MOVED, config_dir, current_target, instantiate, load_run_config
from foundation.train.state import config_changes, plain


def test_an_old_target_path_builds_the_class_where_it_lives_now():
    data = instantiate({"_target_": "foundation.data.memory.FileDataConfig", "path": "mine.xyz"}, "data")
    assert isinstance(data, FileDataConfig) and data.path == "mine.xyz"
    assert current_target("foundation.data.shards_module.ShardDataConfig") == "foundation.data.sources.shards.ShardDataConfig"
    assert current_target("foundation.train.config.TrainerConfig") == "foundation.train.config.TrainerConfig"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_moved_module_is_importable_where_it_went(old):
    importlib.import_module(MOVED[old])


def test_a_config_tree_naming_old_paths_composes(tmp_path):
    tree = shutil.copytree(config_dir(), tmp_path / "configs")
    extxyz = tree / "data" / "extxyz.yaml"
    lines = extxyz.read_text().splitlines()
    lines = ["_target_: foundation.data.memory.FileDataConfig" if s.startswith("_target_:") else s for s in lines]
    extxyz.write_text("\n".join(lines) + "\n")
    run = load_run_config(["data=extxyz", "data.path=mine.xyz"], directory=tree)
    assert isinstance(run.data, FileDataConfig)


def test_resuming_from_a_config_saved_under_the_old_path_reports_no_change():
    saved = plain(FileDataConfig(path="mine.xyz"))
    now = dict(saved)
    saved["_target_"] = "foundation.data.memory.FileDataConfig"
    assert config_changes({"data": saved}, {"data": now}) == []
    now["seed"] = 1
    assert config_changes({"data": saved}, {"data": now}) == ["data.seed"]


def test_a_moved_path_with_no_such_class_is_still_one_line():
    with pytest.raises(UserError, match="no such class"):
        instantiate({"_target_": "foundation.data.memory.NoSuchConfig"}, "data")
