"""`foundation adapt`: a start model adapted to your molecules at CCSD(T) accuracy within a CPU budget.

    foundation adapt --smiles mols.smi --budget 3h --temperature 300..600 --out adapted/
    foundation adapt --smiles CCO "CC(=O)N" --structures mine.xyz --budget 90m --workers 2 --out adapted/
    foundation adapt --smiles mols.smi --budget 40h --slurm --slurm-jobs 16 --out adapted/

The procedure (sample with the start model, choose by its ensemble's disagreement, label with
PySCF within the budget, fine-tune, report) is `foundation.recipes.adapt`; this module parses.
"""

from __future__ import annotations

import argparse

EPILOG = """what it does: samples each molecule by Langevin MD with the start model at the
temperatures given (stopping a trajectory where the ensemble disagrees), holds out a few
conformers per molecule labelled at CCSD(T)/cc-pVDZ, labels the candidates the ensemble
disagrees on most (CCSD(T) energies and MP2 energies + forces, --mix) as long as the CPU budget
holds by a cost model calibrated on the run's first calculations, fine-tunes the start member
by member (never worse than the start on validation) and writes OUT/model.safetensors (default
head ccsdt_ccpvdz), OUT/report.md with the error before and after per molecule, a curve against
CPU-hours and where the budget went. The same command resumes a stopped run, without repeating
a calculation. Charged or open-shell molecules and elements the start model lacks are refused."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "adapt", help="adapt a model to your molecules at CCSD(T) accuracy within a CPU budget",
        usage="foundation adapt --smiles FILE|SMILES... [--structures FILE] --budget 3h --out DIR [options]",
        description="Sample, label (PySCF: CCSD(T), MP2, wB97X) and fine-tune, within a CPU budget.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smiles", nargs="*", default=[], metavar="FILE|SMILES",
                        help="SMILES strings, or files of 'SMILES [name]' lines")
    parser.add_argument("--structures", default=None, metavar="FILE",
                        help="starting structures (any file ASE reads); one molecule per formula and bonds")
    parser.add_argument("--budget", required=True, help="CPU time for the whole run, e.g. 3h, 90m, 600s")
    parser.add_argument("--out", required=True, metavar="DIR", help="the run's folder (also to resume it)")
    parser.add_argument("--model", default="ani-1x", help="the start: an ensemble (default ani-1x)")
    parser.add_argument("--temperature", default="300..600", metavar="T|LOW..HIGH",
                        help="MD temperature(s) in K (a range: 4 temperatures; default 300..600)")
    parser.add_argument("--workers", type=int, default=None, help="labelling processes (default: all cores)")
    parser.add_argument("--rounds", type=int, default=2, help="label-and-fine-tune rounds (default 2)")
    parser.add_argument("--holdout", type=int, default=None,
                        help="held-out CCSD(T) conformers per molecule (default: 3, or 2 when 3 would cost over a "
                             "quarter of the labelling budget)")
    parser.add_argument("--members", type=int, default=None, help="fine-tune the first K members (default all)")
    parser.add_argument("--mix", default=None, metavar="LEVEL=SHARE,...",
                        help="shares of the labelling budget per level (default ccsdt_ccpvdz=0.5,mp2_ccpvdz=0.5)")
    parser.add_argument("--finetune-share", type=float, default=0.25, help="budget kept for fine-tuning (default 0.25)")
    parser.add_argument("--md-steps", type=int, default=2000, help="MD steps per trajectory, 0.5 fs (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slurm", action="store_true", help="label as SLURM array jobs (submitit; pip install "
                                                             "'foundation-mlip[slurm]')")
    parser.add_argument("--slurm-jobs", type=int, default=8, help="array elements per round (default 8)")
    parser.add_argument("--slurm-cpus", type=int, default=4, help="CPUs (labelling workers) per element (default 4)")
    parser.add_argument("--slurm-partition", default=None)
    parser.add_argument("--slurm-timeout", type=int, default=240, help="minutes per element (default 240)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=run, accepts_overrides=True)


def run(args) -> int:
    from foundation.recipes.adapt import adapt
    from foundation.recipes.adapt.labelling import SlurmSettings

    slurm = SlurmSettings(jobs=args.slurm_jobs, cpus_per_task=args.slurm_cpus, timeout_min=args.slurm_timeout,
                          partition=args.slurm_partition)
    adapt(args.smiles, out=args.out, budget=args.budget, structures=args.structures, model=args.model,
          temperature=args.temperature, workers=args.workers, slurm=args.slurm, rounds=args.rounds,
          holdout=args.holdout, members=args.members, mix=args.mix, finetune_share=args.finetune_share,
          md_steps=args.md_steps, seed=args.seed, overrides=list(args.overrides or []), verbose=not args.quiet,
          slurm_settings=slurm)
    return 0
