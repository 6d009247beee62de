"""`foundation data select` end to end: files in, picks and scores out."""

import json

import ase.io
import numpy as np
import pytest
import torch

from foundation.cli.main import main
from foundation.data.ase_io import write_extxyz
from foundation.hub.format import save_model
from foundation.models import ANIConfig
from foundation.models.ensemble import EnsembleModel


def _committee(tmp_path, size=3):
    members = []
    for seed in range(size):
        torch.manual_seed(seed)
        m = ANIConfig(heads=["ccsdt_ccpvdz"], hidden={s: [8] for s in "HCNO"}).build()
        m.set_reference_energies("ccsdt_ccpvdz", {"H": -13.6, "C": -1030.0, "N": -1485.0, "O": -2040.0})
        members.append(m.eval())
    paths = [save_model(m, tmp_path / f"m{k}.safetensors") for k, m in enumerate(members)]
    return save_model(EnsembleModel.from_members(members), tmp_path / "ensemble.safetensors"), paths


@pytest.fixture
def pool_file(tmp_path, make_samples):
    samples = make_samples(n_molecules=4, n_conformers=3, seed=0, fidelity="dft")
    path = tmp_path / "pool.xyz"
    write_extxyz(path, samples)
    return path, samples


def test_picks_and_scores_are_written(tmp_path, pool_file, capsys):
    ensemble, _ = _committee(tmp_path)
    pool, samples = pool_file
    labelled = tmp_path / "labelled.xyz"
    write_extxyz(labelled, samples[:2])
    out = tmp_path / "picks.xyz"
    code = main(["data", "select", "--model", str(ensemble), "--pool", str(pool), "--n", "4", "--out", str(out),
                 "--labelled", str(labelled), "--diversity", "0.3", "--seed", "1"])
    assert code == 0, capsys.readouterr().err
    picks = ase.io.read(out, index=":")
    scores = json.loads((tmp_path / "picks.xyz.scores.json").read_text())
    assert len(picks) == 4 and scores["n_pool"] == len(samples) - 2  # the labelled two are not candidates
    assert len(scores["candidates"]) == scores["n_pool"]
    assert [a.info["source"] for a in picks] == scores["picked"]
    first = picks[0].info
    assert first["al_rank"] == 0 and first["energy_spread_per_atom_ev"] > 0 and first["force_spread_ev_per_a"] > 0
    # The first pick (before diversity can matter) is the candidate the committee disagrees on most.
    best = max(scores["candidates"], key=lambda c: c["score"])
    assert best["source"] == scores["picked"][0] and best["picked"] == 0
    index = int(best["source"].rsplit(":", 1)[1])  # sources of a file's structures: <file>:<index>
    np.testing.assert_allclose(picks[0].positions, samples[index].positions, atol=1e-6)


def test_member_files_random_strategy_and_md(tmp_path, pool_file, capsys):
    _, members = _committee(tmp_path, size=2)
    pool, _ = pool_file
    out = tmp_path / "md_picks.xyz"
    code = main(["data", "select", "--model", ",".join(map(str, members)), "--pool", str(pool), "--n", "3",
                 "--out", str(out), "--md-steps", "4", "--md-interval", "2", "--md-temperature", "300"])
    assert code == 0, capsys.readouterr().err
    scores = json.loads((tmp_path / "md_picks.xyz.scores.json").read_text())
    assert scores["n_pool"] == 12 * 2 and all("/md0000" in c["source"] for c in scores["candidates"])
    code = main(["data", "select", "--pool", str(pool), "--n", "5", "--out", str(tmp_path / "r.xyz"),
                 "--strategy", "random", "--seed", "3"])
    assert code == 0
    again = main(["data", "select", "--pool", str(pool), "--n", "5", "--out", str(tmp_path / "r2.xyz"),
                  "--strategy", "random", "--seed", "3"])
    assert again == 0
    assert [a.info["source"] for a in ase.io.read(tmp_path / "r.xyz", index=":")] == \
        [a.info["source"] for a in ase.io.read(tmp_path / "r2.xyz", index=":")]


def test_one_model_is_not_a_committee(tmp_path, pool_file, capsys):
    _, members = _committee(tmp_path, size=1)
    pool, _ = pool_file
    code = main(["data", "select", "--model", str(members[0]), "--pool", str(pool), "--n", "2",
                 "--out", str(tmp_path / "p.xyz")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "at least 2 members" in err and "\n" not in err


def test_candidates_sampled_from_smiles(tmp_path, capsys):
    smiles = tmp_path / "mols.smi"
    smiles.write_text("CO methanol\nN ammonia\n")
    out = tmp_path / "picks.extxyz"
    code = main(["data", "select", "--smiles", str(smiles), "--conformers", "4", "--n", "3", "--out", str(out),
                 "--strategy", "random"])
    assert code == 0, capsys.readouterr().err
    scores = json.loads((tmp_path / "picks.extxyz.scores.json").read_text())
    assert scores["n_pool"] == 8 and {c["molecule"] for c in scores["candidates"]} == {"methanol", "ammonia"}
    assert len(ase.io.read(out, index=":")) == 3
