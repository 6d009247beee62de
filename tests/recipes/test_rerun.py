"""`foundation.recipes.rerun`: a recipe typed again in its folder shows the finished result when
nothing it depends on changed, and otherwise moves the earlier folder aside (never deletes it)
and runs afresh. Real folders on disk; no training needed to decide."""

import os

from foundation.recipes.rerun import MARKER, Rerun


def _finished_run(folder, argv):
    rerun = Rerun(folder, argv)
    assert not rerun.done
    (folder / "model.safetensors").parent.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    rerun.finish("| the table |\n\nreport: here", model=str(folder / "model.safetensors"))


def _aside(tmp_path, name="out"):
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(f"{name}.prev-"))


def test_finished_with_the_same_inputs_is_shown_again_not_rerun(tmp_path, capsys):
    out = tmp_path / "out"
    _finished_run(out, ["--out", str(out), "--fast"])
    capsys.readouterr()
    again = Rerun(out, ["--out", str(out), "--fast"])
    printed = capsys.readouterr().out
    assert again.done and again.record["model"] == str(out / "model.safetensors")
    assert printed.splitlines()[0].startswith(f"{out}: finished on ") and "--fresh" in printed.splitlines()[0]
    assert "| the table |" in printed and "report: here" in printed
    assert (out / "model.safetensors").is_file() and _aside(tmp_path) == []


def test_other_arguments_move_the_earlier_run_aside(tmp_path, capsys):
    out = tmp_path / "out"
    _finished_run(out, ["--fast"])
    capsys.readouterr()
    again = Rerun(out, ["--members", "2"])
    line = capsys.readouterr().out.strip()
    assert not again.done and not out.exists()
    [moved] = _aside(tmp_path)
    assert (tmp_path / moved / "model.safetensors").read_bytes() == b"weights"  # kept, not deleted
    assert line.startswith("an earlier run with other arguments: moved aside") and moved in line
    assert len(line.splitlines()) == 1


def test_an_unfinished_run_and_fresh_start_afresh(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "pretrain").mkdir(parents=True)
    (out / "pretrain" / "ckpt-000100.pt").write_bytes(b"half way")
    assert not Rerun(out, []).done and not out.exists()
    assert capsys.readouterr().out.startswith("an unfinished earlier run: moved aside")
    _finished_run(out, [])
    assert not Rerun(out, [], fresh=True).done and not out.exists()
    assert len(_aside(tmp_path)) == 2  # two moved aside in the same second keep distinct names


def test_a_changed_input_file_counts_the_output_folder_does_not(tmp_path):
    model, out = tmp_path / "start.safetensors", tmp_path / "runs" / "delta"
    model.write_bytes(b"v1")
    argv = [f"trainer.init_from={model}", f"out_dir={tmp_path / 'runs'}", "name=delta"]
    _finished_run(out, argv)
    (out / "more.txt").write_text("the run's own files change as it goes")
    assert Rerun(out, argv).done
    model.write_bytes(b"v2, retrained")
    os.utime(model, ns=(1, 1))
    assert not Rerun(out, argv).done and not out.exists()


def test_several_folders_move_together_the_marker_in_the_first(tmp_path):
    folders = [tmp_path / "choose_finetune", tmp_path / "choose_delta"]
    for f in folders:
        f.mkdir()
        (f / "model.safetensors").write_bytes(b"w")
    rerun = Rerun(folders, ["--recipes", "finetune,delta"])  # unfinished: both moved aside
    assert not rerun.done and not any(f.exists() for f in folders)
    for f in folders:
        f.mkdir()
    rerun.finish("chosen: delta")
    assert (folders[0] / MARKER).is_file()
    assert Rerun(folders, ["--recipes", "finetune,delta"]).done


def test_a_hydra_recipe_typed_twice_is_shown_then_rerun_when_a_setting_changes(tiny, pretrained, runs_dir, capsys):
    """`python -m foundation.recipes.delta … name=N` again: its folder is `<out_dir>/N`."""
    from foundation.recipes import delta

    # allow_worse: 4 steps need not beat the start on validation (the floor is tested in
    # tests/finetuning); here the summary line of a finished run is what is shown again
    argv = ["--from", str(pretrained), *tiny, "name=delta_twice", "trainer.max_steps=4", "trainer.allow_worse=true"]
    assert delta.main(argv) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    assert first.startswith("completed at step 4:")
    assert delta.main(argv) == 0
    second = capsys.readouterr().out
    assert "delta_twice: finished on" in second and first in second
    assert delta.main([*argv, "trainer.max_steps=5"]) == 0
    out = capsys.readouterr().out
    assert "an earlier run with other arguments: moved aside" in out and "completed at step 5:" in out
    assert len(_aside(runs_dir, "delta_twice")) == 1
