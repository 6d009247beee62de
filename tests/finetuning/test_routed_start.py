"""`foundation finetune --model ani-1x-ccsdt` with no extra flag (issue 27): the shipped CC model is
an ensemble of routed members (its wB97X head answered by an untouched copy of ANI-1x), and
`trainer.freeze=[auto]` now has a default for it: the part answering the other heads stays whole,
the trained part keeps its own default (ANI's second layers) fixed."""

from __future__ import annotations

import torch

from foundation.cli.main import main
from foundation.data.batch import collate
from foundation.data.sample import Sample
from foundation.hub.format import read_header
from foundation.loading import load_pretrained
from tests.finetuning.conftest import ENERGY_KEY

START, DFT, CC = "ani-1x-ccsdt", "wb97x_631gs", "ccsdt_ccpvdz"


def test_finetune_from_the_shipped_cc_model_needs_no_freeze_flag(hf_xyz, hf_test_images, tmp_path, capsys):
    out = tmp_path / "tuned.safetensors"
    code = main(["finetune", "--model", START, "--data", str(hf_xyz), "--energy-key", ENERGY_KEY,
                 "--fidelity", CC, "--members", "1", "--out", str(out), "trainer.max_steps=4",
                 "trainer.val_every=2", "trainer.device=cpu", f"out_dir={tmp_path}", "name=routed", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    header = read_header(out)
    assert header["default_head"] == CC and header["finetune"]["from"].startswith(f"{START}, member 0 of 8")
    tuned, start = load_pretrained(out, "cpu"), load_pretrained(START, "cpu").members[0]
    assert type(tuned).__name__ == "RoutedModel" and tuned.default_head == CC
    # The wB97X part was frozen whole: its head answers as the start's, bit for bit.
    sample = Sample(hf_test_images[0].numbers, hf_test_images[0].positions)
    batch = collate([sample]).to("cpu", tuned.dtype)
    assert torch.equal(tuned(batch, DFT)["energy"], start(batch, DFT)["energy"])
