"""Models: the `PotentialModel` base, the registry (`build_model` from a config), the
architectures (ANI-style AEV nets, PaiNN, MACE through mace-torch) and what wraps them
(ensembles, Δ-learning, routed heads), and `predict`. Import from here; names load on first use
(`foundation.lazy_exports`), and an architecture registers itself when its module is imported
(`build_model` imports it by name).

    from foundation.models import ANIConfig, build_model
    model = ANIConfig(heads=["wb97x_631gs"]).build()
"""

from typing import TYPE_CHECKING

from foundation.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from foundation.models.ani import ANI, ANIConfig
    from foundation.models.base import ModelConfig, PotentialModel
    from foundation.models.delta import DeltaConfig, DeltaModel
    from foundation.models.ensemble import EnsembleConfig, EnsembleModel
    from foundation.models.mace import MACEConfig
    from foundation.models.painn import PaiNNConfig
    from foundation.models.prediction import predict
    from foundation.models.reference import fit_reference_energies
    from foundation.models.registry import build_model, model_config, register_model
    from foundation.models.routed import RoutedConfig, RoutedModel

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
