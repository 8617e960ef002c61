import pytest
import torch as th


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    # Tests are many tiny models: one thread avoids oversubscription on the 2-core CI machine.
    th.set_num_threads(1)
