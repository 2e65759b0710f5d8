import pytest
import torch

import mae
from helpers import TINY
from mae.weights.format import save_model


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from a second thread, and lose much when the core is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """A freshly initialised tiny MAE saved as our safetensors file."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("enc") / "mae.safetensors"
    save_model(mae.create_model("mae_vit_tiny_patch16", **TINY), path)
    return path
