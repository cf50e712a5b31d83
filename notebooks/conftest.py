"""pytest hooks for the notebooks' smoke runs (nbmake items, `make test`)."""

import pytest


def pytest_collection_modifyitems(items):
    # nbmake drives each notebook's kernel over ZeroMQ. On the 2-core test VM a full `make test` now
    # and then left nbmake waiting on a kernel that had gone idle after running its cells (seen in
    # 2 of 4 full runs of this suite, always notebook 06, never when the notebook ran alone). One
    # rerun keeps that transport flake from failing CI; a notebook that really fails, fails twice.
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.flaky(reruns=1))
