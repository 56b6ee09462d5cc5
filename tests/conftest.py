"""Shared test fixtures: a tiny synthetic dataset (3 classes, 12 training and 9 validation videos, 64x80 frames);
tests marked `slow` (full-size heavy networks) run only with `--runslow`."""

from __future__ import annotations

import pytest

from ops.data.synthetic import TINY_DATASET, ensure_synthetic


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("data"))
    ensure_synthetic(root, **TINY_DATASET)
    return root


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run the tests marked slow (heavy networks)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="heavy network: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
