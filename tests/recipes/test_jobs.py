"""foundation.recipes.jobs: independent trainings side by side give what one after another gives."""

import pytest
from safetensors.torch import load_file

from foundation.errors import UserError
from foundation.recipes import jobs


@pytest.mark.integration  # trainings side by side in worker processes
def test_two_processes_write_the_weights_one_process_writes(tiny, tmp_path):
    def batch(where):
        return [("scratch", None, [*tiny, f"out_dir={tmp_path / where}", f"name=seed{k}", f"trainer.seed={k}",
                                   "trainer.max_steps=10"]) for k in range(2)]

    one = jobs.train_all(batch("serial"), workers=1)
    two = jobs.train_all(batch("parallel"), workers=2)
    assert [r.step for r in two] == [r.step for r in one]
    for a, b in zip(one, two):
        wa, wb = load_file(a.model_path), load_file(b.model_path)
        assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
    first, second = load_file(one[0].model_path), load_file(one[1].model_path)
    assert any((first[k] != second[k]).any() for k in first)  # two seeds: two different runs


def test_foundation_jobs_sets_the_number_of_processes(monkeypatch):
    monkeypatch.setenv("FOUNDATION_JOBS", "3")
    assert jobs.default_workers() == 3
    monkeypatch.setenv("FOUNDATION_JOBS", "many")
    with pytest.raises(UserError, match="FOUNDATION_JOBS='many'"):
        jobs.default_workers()
