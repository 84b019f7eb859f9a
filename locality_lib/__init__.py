"""locality_lib: the library under the Locality book.

Every model follows one contract: ``den(x_t, t) -> x0_hat`` with ``x_t`` a float tensor
``[B, C, H, W]`` in the VP scaling and ``t`` an int in ``0..999`` (or a ``[B]`` long tensor).
"""
from .base import Denoiser, TrainingSetDenoiser
from .compare import Comparison, compare_models
from .data import (DATASETS, data_root, load_dataset, plant_pattern, shuffle_flat, shuffle_pixels, unshuffle_flat,
                   unshuffle_pixels)
from .dit import DiT, DiTConfig
from .epsilon import EpsilonDenoiser, UNetDenoiser
from .locality import PAPER_DIAG_FLOOR, PAPER_THRESHOLDS, LocalityDenoiser, locality_masks
from .metrics import mse, nearest_train, pearson_r, r2
from .nearest import NearestDenoiser
from .optimal import OptimalDenoiser
from .pretrained import PRETRAINED, on_grid, pretrained
from .patches import ELSDenoiser, LSDenoiser, PaddedELSDenoiser, PatchPosteriorDenoiser, calibrate_by_score, calibrate_patch_sizes
from .sampling import DDIMResult, ddim_sample
from .schedule import DDPMSchedule
from .statistics import DataStatistics, dataset_statistics
from .unet import UNet, UNetConfig
from .wiener import WienerDenoiser

__version__ = "0.1.0"

__all__ = [
    "DATASETS", "DDIMResult", "DDPMSchedule", "DataStatistics", "dataset_statistics", "Denoiser", "LocalityDenoiser",
    "ELSDenoiser", "LSDenoiser", "PaddedELSDenoiser", "PatchPosteriorDenoiser", "calibrate_by_score", "calibrate_patch_sizes",
    "NearestDenoiser", "OptimalDenoiser", "PAPER_DIAG_FLOOR", "PAPER_THRESHOLDS", "TrainingSetDenoiser", "WienerDenoiser",
    "UNet", "UNetConfig", "UNetDenoiser", "DiT", "DiTConfig", "EpsilonDenoiser", "PRETRAINED", "pretrained", "on_grid",
    "plant_pattern", "shuffle_pixels", "unshuffle_pixels", "shuffle_flat", "unshuffle_flat",
    "Comparison", "compare_models", "data_root", "ddim_sample", "load_dataset", "locality_masks", "mse", "nearest_train", "pearson_r", "r2",
]

#: The address of the book's repository: a copy of `repository.url` in _config.yml, written by
#: tools/set_repository_url.py.
REPOSITORY_URL = "https://github.com/locality-book/locality"
