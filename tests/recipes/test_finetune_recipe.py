"""The `finetune` recipe (ANI-1ccx-style transfer) keeps its frozen layers exactly."""

import fnmatch

import torch
from safetensors.torch import load_file as weights  # the tensors exactly as stored

from foundation.recipes.common import CC
from foundation.train.run import train


def test_frozen_layers_stay_bit_identical(pretrained, tiny):
    # allow_worse: ten steps need not beat the start, and the start is no test of training
    result = train([*tiny, "name=finetune", f"trainer.init_from={pretrained}",
                    "trainer.max_steps=10", "trainer.allow_worse=true"], recipe="finetune", quiet=True)
    before, after = weights(pretrained), weights(result.model_path)
    frozen = [n for n in before if fnmatch.fnmatchcase(n, "networks.*.layers.2.*")]
    assert len(frozen) == 8  # weight and bias of the second Linear of each of H, C, N, O
    for name in frozen:
        assert torch.equal(after[name], before[name]), name
    assert not torch.equal(after["networks.C.layers.0.weight"], before["networks.C.layers.0.weight"])
    assert f"networks.C.heads.{CC}.weight" in after


def test_a_run_that_does_not_beat_its_start_writes_the_start(pretrained, tiny, capsys):
    """The recipes that early-stop keep the floor of `foundation finetune` (issue 20): a rate
    that only harms writes the pretrained model with its refit references, and says so."""
    result = train([*tiny, "name=finetune_floor", f"trainer.init_from={pretrained}",
                    "trainer.max_steps=6", "trainer.val_every=3", "trainer.lr=5.0",
                    "trainer.warmup_steps=0"], recipe="finetune")
    printed = capsys.readouterr().out
    assert result.kept_start and result.best_step == 0
    assert f"finetune_floor: {result.note}\n" in printed and result.note.startswith("not better: ")
    assert result.selection.startswith("validation relative-energy RMSE")  # conformers in the validation set
    before, after = weights(pretrained), weights(result.model_path)
    for name, tensor in before.items():
        if name != "reference_energies":
            assert torch.equal(after[name], tensor), name
