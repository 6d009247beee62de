"""Fine-tune a pretrained model on a user's own labelled structures, in one call.

    result = foundation.finetune("ani-cc-mini", "mine.xyz", energy_key="E_ccsdt", fidelity="ccsdt_tz")

What it does, in order (each step can fail with one clear line before any training):
1. compose `recipe=finetune_user` (hydra_configs/recipe/finetune_user.yaml) with the caller's
   Hydra overrides: the transfer defaults (frozen second layer, low rate, early stopping);
2. read the labels (any ASE-readable file, or a list of `ase.Atoms`), warning when energies look
   like Hartree or kcal/mol rather than eV, and name each structure's molecule (an info key that
   names molecules, else formula and bonds: `molecules`);
3. load the pretrained model and check it knows every element;
4. split train/validation: by molecule when there are many molecules, by conformer when the data
   are conformers of a few (`UserDataConfig`);
5. build the trainer: a new head for the fidelity (copied from the model's default head) or the
   existing one continued, the change of its per-element reference energies refit (ridge) so
   step 0 is not electron-volts off; score the validation set ("before");
6. train with early stopping on the validation relative-energy RMSE (`foundation.train.selection`),
   the start being the first candidate, so the weights written are never worse there than the
   start (when no step beats it, the start is written and `reason` says so); score again
   ("after"), write the model (default head: the fidelity) and a Markdown report with a parity plot.
An ensemble start (ANI-1x, ANI-1ccx) runs steps 5-6 once per member, each from its own member with
its own seed on the one split, and writes one ensemble, never worse than its start members
(`members`; `members=K` fine-tunes the first K, 1 of them as a single model).

Modules: `data` (reading, checks, the split), `molecules` (which structures are one molecule),
`run` (the steps), `members` (an ensemble, member by member), `report` (what it prints and
writes); the settings are
hydra_configs/recipe/finetune_user.yaml.
"""

from foundation.finetuning.data import UserDataConfig, read_user_data
from foundation.finetuning.run import FinetuneResult, finetune

__all__ = ["FinetuneResult", "UserDataConfig", "finetune", "read_user_data"]
