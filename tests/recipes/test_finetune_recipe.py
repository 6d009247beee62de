"""The `finetune` recipe (ANI-1ccx-style transfer) keeps its frozen layers exactly."""

import fnmatch

import torch
from safetensors.torch import load_file as weights  # the tensors exactly as stored

from foundation.recipes.common import CC, train


def test_frozen_layers_stay_bit_identical(pretrained, tiny):
    result = train("finetune", [*tiny, "name=finetune", f"trainer.init_from={pretrained}",
                                "trainer.max_steps=10"], quiet=True)
    before, after = weights(pretrained), weights(result.model_path)
    frozen = [n for n in before if fnmatch.fnmatchcase(n, "networks.*.layers.2.*")]
    assert len(frozen) == 8  # weight and bias of the second Linear of each of H, C, N, O
    for name in frozen:
        assert torch.equal(after[name], before[name]), name
    assert not torch.equal(after["networks.C.layers.0.weight"], before["networks.C.layers.0.weight"])
    assert f"networks.C.heads.{CC}.weight" in after
