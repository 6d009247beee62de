"""Foundation: pretraining and fine-tuning of machine-learning interatomic potentials."""

__version__ = "0.1.0"
