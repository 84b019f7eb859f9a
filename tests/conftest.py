import os
from pathlib import Path

import pytest
import torch

# Offline machines keep MNIST/Fashion-MNIST beside the repository (../shared/data).
_shared = Path(__file__).resolve().parents[2] / "shared" / "data"
if "LOCALITY_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["LOCALITY_DATA_DIR"] = str(_shared)

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def schedule():
    from locality_lib import DDPMSchedule

    return DDPMSchedule()


@pytest.fixture(scope="session")
def mnist_small():
    from locality_lib import load_dataset

    return load_dataset("mnist", n=300, seed=1)


@pytest.fixture(scope="session")
def mnist_queries():
    from locality_lib import load_dataset

    return load_dataset("mnist", split="test", n=4, seed=2)
