"""RaIN, CPGAN's random adaptive instance normalisation: relights uniformly lit faces.

``datagen.rain.model`` (params, networks, losses, generation) and ``datagen.rain.checkpoint``
are re-exported here, so ``from datagen import rain; rain.load(...)`` is the public API;
``datagen.rain.pool`` builds style pools, ``datagen.rain.train`` trains, and
``python -m datagen.rain sample`` (``datagen.rain.cli``) relights from the command line.
"""

from datagen.rain.checkpoint import (
    CHECKPOINT,
    CheckpointError,
    checkpoint_file,
    checkpoint_metadata,
    load,
    save,
)
from datagen.rain.model import (
    FEATURES,
    LOG_GAIN,
    LUMA,
    OUTPUTS,
    STATS,
    Decoder,
    LossWeights,
    ModelConfig,
    RaIN,
    RainParams,
    StatsVAE,
    decoder_losses,
    grey3,
    latent_from_rng,
    latents,
    log_gain_grid,
    pad8,
    posterior_gaussian,
    raw_stats,
    recolour,
    relight_face,
    style_loss,
    to_luma,
    to_tensor,
    to_uint8,
    vae_losses,
)

__all__ = [
    "CHECKPOINT",
    "FEATURES",
    "LOG_GAIN",
    "LUMA",
    "OUTPUTS",
    "STATS",
    "CheckpointError",
    "Decoder",
    "LossWeights",
    "ModelConfig",
    "RaIN",
    "RainParams",
    "StatsVAE",
    "checkpoint_file",
    "checkpoint_metadata",
    "decoder_losses",
    "grey3",
    "latent_from_rng",
    "latents",
    "log_gain_grid",
    "posterior_gaussian",
    "load",
    "pad8",
    "raw_stats",
    "recolour",
    "relight_face",
    "save",
    "style_loss",
    "to_luma",
    "to_tensor",
    "to_uint8",
    "vae_losses",
]
