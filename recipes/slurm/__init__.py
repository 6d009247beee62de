"""SLURM launchers for `foundation train`: an sbatch script and a submitit submitter."""
