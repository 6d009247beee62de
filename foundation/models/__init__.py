"""Models: neighbour lists, ANI features, the `PotentialModel` base, the registry."""

from foundation.models.base import ModelConfig, PotentialModel
from foundation.models.registry import build_model, register_model
from foundation.models.ani import ANI, ANIConfig  # noqa: E402  (registers "ani")
from foundation.models.prediction import predict
from foundation.models.reference import fit_reference_energies

__all__ = ["ANI", "ANIConfig", "ModelConfig", "PotentialModel", "build_model", "fit_reference_energies",
           "predict", "register_model"]
