"""The embedded data holds every label folder's labels: the MP2 rung's, the frontier's, and says
which methods made each fidelity."""

import json

from foundation.data.shards.manifest import load_manifest
from foundation.pipelines.embedded import build


def test_the_shipped_manifest_counts_the_mp2_thermal_and_frontier_labels_with_their_methods():
    manifest = load_manifest(build.OUT)
    folders = manifest.data["label_folders"]
    assert {"cc_set/labels", "embedded/labels", "mp2_set/labels", "thermal/cc/labels", "thermal/mp2/labels",
            "thermal/mp2cc/labels", "small_val/labels", "frontier/labels"} <= set(folders)
    assert set(folders["frontier/labels"]) == {"frontier_val", "frontier_test"}  # never train, val or test
    assert set(folders["thermal/cc/labels"]) == set(folders["thermal/mp2/labels"]) == {"train"}
    assert set(folders["thermal/mp2cc/labels"]) == {"train"} and set(folders["small_val/labels"]) == {"val"}
    assert manifest.data["label_stats"]["mp2_ccpvdz_ri:ok"] >= 823  # at least every CC structure's partner
    mp2 = manifest.data["levels_of_theory"]["mp2_ccpvdz"]
    assert "RI-MP2 (DF-RHF, frozen core)" in mp2["method"].split("; ") and mp2["basis"] == "cc-pVDZ"
    assert mp2["program"].startswith("pyscf")
    assert manifest.counts("train")["fidelities"]["mp2_ccpvdz"]["energy"] > 319  # partners of the CC train split and more


def test_a_fidelity_made_by_two_methods_names_both(tmp_path):
    def folder(name, method, fid):
        d = tmp_path / name
        d.mkdir()
        s = {"id": "w/0", "molecule": "w", "numbers": [8, 1, 1], "positions": [[0, 0, 0.12], [0, 0.76, -0.47], [0, -0.76, -0.47]],
             "sampling": "given", "split": "train", "levels": [fid]}
        (d / "structures.jsonl").write_text(json.dumps(s) + "\n")
        r = {"id": "w/0", "fidelity": fid, "status": "ok", "energy": -2070.0, "forces": None, "converged": True,
             "method": method, "basis": "cc-pVDZ", "program": "pyscf 2.14.0", "seconds": 1.0}
        (d / "labels.jsonl").write_text(json.dumps(r) + "\n")
        return d

    out = tmp_path / "shards"
    build.build((folder("a", "RI-MP2 (DF-RHF, frozen core)", "mp2_ccpvdz_ri"),
                 folder("b", "MP2 (RHF, frozen core)", "mp2_ccpvdz")), out)
    levels = load_manifest(out).data["levels_of_theory"]
    assert levels == {"mp2_ccpvdz": {"method": "RI-MP2 (DF-RHF, frozen core); MP2 (RHF, frozen core)",
                                     "basis": "cc-pVDZ", "program": "pyscf 2.14.0"}}
