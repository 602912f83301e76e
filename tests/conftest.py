import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")


@pytest.fixture
def write_spec(tmp_path):
    """Write a spec file (text) and return its path."""
    counter = iter(range(10_000))

    def write(text: str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"spec{next(counter)}.yaml")
        path.write_text(text)
        return path

    return write


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the golden files (tests/bad_specs/*.expected) from the current output; review the diff")
