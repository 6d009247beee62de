"""The Hydra config tree, installed as the package `foundation.configs` (see setup.py), so that
`foundation train` finds it from any folder; `$FOUNDATION_HYDRA_CONFIGS` names another tree."""
