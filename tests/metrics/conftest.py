import pytest
import torch


@pytest.fixture
def single_thread():
    """Tiny models (the 2 x 32 MLP) run faster on one intra-op thread: more threads only add
    synchronisation, which costs 5x on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
