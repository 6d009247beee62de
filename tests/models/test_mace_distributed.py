"""`model=mace` under the engines: a real 2-process `torchrun` (gloo on 127.0.0.1) trains the tiny
MACE on the embedded shards, each rank streaming its own half, under DDP and under DeepSpeed ZeRO-2
(optimiser states sharded over the ranks), and ends with the weights of one process that takes the
same global batch (so both ranks applied the same all-reduced gradients)."""


import pytest
import torch

from foundation.train.compose import load_run_config
from foundation.train.trainer import Trainer

from tests.train import multiproc
from foundation.models.mace_torch import installed

HAVE_MACE = installed()
pytestmark = [pytest.mark.integration,  # torchrun
              pytest.mark.skipif(not HAVE_MACE, reason="mace-torch not installed: pip install 'foundation-mlip[mace]'"),
              pytest.mark.filterwarnings("ignore:`torch.jit.(save|load)` is deprecated:DeprecationWarning")]

STEPS = 3


ENGINES = {"ddp": ["distributed=ddp"],
           "deepspeed": ["distributed=deepspeed", "distributed.zero_stage=2"]}


@pytest.mark.parametrize("engine", ENGINES)
def test_two_ranks_train_mace_on_the_shards_like_one_process_with_the_same_global_batch(tmp_path, engine):
    if engine == "deepspeed":
        pytest.importorskip("deepspeed")
    common = ["model=mace", "experiment=smoke", *multiproc.shard_data(), f"out_dir={tmp_path}",
              f"trainer.max_steps={STEPS}", f"trainer.val_every={STEPS}", f"trainer.ckpt_every={STEPS}",
              "trainer.val_at_start=false", "trainer.lr=1e-2", "trainer.ema_decay=0.9"]
    done = multiproc.train([*common, *ENGINES[engine], f"name={engine}"], timeout=500)
    assert done.stdout.count(f"completed at step {STEPS}") == 1  # rank 0 reports, rank 1 is quiet
    assert (tmp_path / engine / "model.safetensors").exists()
    weights, ema = multiproc.final_state(tmp_path / engine)
    ref_weights, ref_ema = multiproc.reference([*common, "name=reference"])
    multiproc.assert_close(*_nonempty(weights, ref_weights))
    multiproc.assert_close(*_nonempty(ema, ref_ema))
    start = Trainer(load_run_config([*common, "name=start"])).model.state_dict()
    for layer in ("mace.interactions.0.", "mace.products.1.", "readout.heads.ccsdt_ccpvdz.1."):
        assert any(not torch.equal(weights[n], v) for n, v in start.items() if n.startswith(layer)), layer


def _nonempty(*states):
    """The states without e3nn's empty placeholders (a bias-free layer's `bias` is a 0-element tensor)."""
    return [{n: v for n, v in state.items() if v.numel()} for state in states]
