"""`recipes.compare_models` at a tiny size: the same pretrain + finetune recipe for ANI and MACE,
MACE on a budget of its own, both evaluated on the held-out CC molecules."""

import json
import math

import pytest

from foundation.recipes import compare_models
from foundation.models.mace_torch import installed

HAVE_MACE = installed()


@pytest.mark.integration  # trainings side by side in worker processes
@pytest.mark.skipif(not HAVE_MACE, reason="mace-torch not installed: pip install 'foundation-mlip[mace]'")
@pytest.mark.filterwarnings("ignore:`torch.jit.(save|load)` is deprecated:DeprecationWarning")
def test_ani_and_mace_through_the_same_recipe_mace_on_its_own_budget(tmp_path, capsys):
    assert compare_models.default_models() == ["ani", "painn", "mace"]
    out = tmp_path / "compare"
    assert compare_models.main(["--out", str(out), "--steps", "4", "--model", "ani", "--model", "mace",
                                "--budget", "mace=2", "experiment=smoke", "trainer.val_every=1000",
                                "trainer.ckpt_every=1000"]) == 0
    printed = capsys.readouterr().out
    assert "mace: pretrain (2 steps) + finetune" in printed and "| mace: finetune |" in printed
    results = json.loads((out / "report" / "results.json").read_text())["models"]
    assert set(results) == {f"{m}: {stage}" for m in ("ani", "mace") for stage in ("DFT-pretrained", "finetune")}
    assert results["ani: finetune"]["pretrain_steps"] == 4 and results["mace: finetune"]["pretrain_steps"] == 2
    for label, metrics in results.items():
        for key in ("relative_energy_rmse_kcal_mol", "forces_vs_dft_mae_ev_per_a", "training_seconds"):
            assert math.isfinite(metrics[key]) and metrics[key] > 0, (label, key)
    assert (out / "mace_finetune" / "model.safetensors").exists()


@pytest.mark.parametrize("budget, message", [("mace", "give MODEL=STEPS"), ("mace=0", "give MODEL=STEPS"),
                                             ("schnet=5", "'schnet' is not one of the models compared")])
def test_a_bad_budget_is_one_line(tmp_path, capsys, budget, message):
    assert compare_models.main(["--out", str(tmp_path), "--model", "ani", "--model", "mace", "--budget", budget]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
