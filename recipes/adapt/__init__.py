"""`foundation adapt`: your molecules at coupled-cluster accuracy, for the CPU time you can afford.

    foundation adapt --smiles mols.smi --budget 3h --temperature 300..600 --out adapted/
    from foundation.recipes.adapt import adapt; adapt(["CCO", "CC(=O)N"], budget="3h", out="adapted")

One run, every step on disk before the next, so the same command resumes a stopped run:
1. door (door.py): the molecules read and checked; charged or open-shell molecules and elements
   the start model lacks are refused in one line each;
2. sample (sampling.py): RDKit conformers, then Langevin MD with the start model at the given
   temperatures, each trajectory stopped where the ensemble's spread passes a threshold;
3. choose (choose.py): a few frames per molecule held out (labelled at CCSD(T), never trained
   on); the rest ranked by the ensemble's disagreement per structure and per atom, spread over
   molecules, over each molecule's energy range and over levels of theory (`mix`);
4. label (labelling.py, costs.py): PySCF through the resumable labeller, every calculation kept,
   admitted only while the CPU budget holds by a cost model per level and size that is
   calibrated on the run's own calculations (the estimate is printed before labelling starts);
   `--slurm` sends the calculations out as SLURM array jobs through submitit;
5. fine-tune (tuning.py): the start, member by member, with the CCSD(T) energies as the
   `ccsdt_ccpvdz` head and the cheaper levels as extra heads, never worse than the start on
   validation (`foundation.finetuning`); `rounds` > 1 repeats 3-5, the next round choosing with
   the last round's ensemble;
6. report (report.py): held-out error against CCSD(T) before and after per molecule, the error
   against CPU-hours, where the budget went and the ensemble's spread; the model is
   `<out>/model.safetensors`, default head `ccsdt_ccpvdz`.

The budget is CPU time of everything the run does: every calculation's own CPU seconds (its
record's `cpu_seconds`) and this program's process time for sampling, choosing and fine-tuning
(ledger.py). A share (`finetune_share`) is kept for fine-tuning, less once a fine-tune has been
measured (run.py); labelling stops where the rest is spent.
"""

from foundation.recipes.adapt.run import AdaptResult, adapt, parse_budget, parse_mix, parse_temperatures

__all__ = ["AdaptResult", "adapt", "parse_budget", "parse_mix", "parse_temperatures"]
