"""Checks of the fixture helpers in tests/official.py against the checksums stored with the fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from tests.official import contract_tensor, contract_tolerances, fixture_frame, load_fixture


@pytest.mark.parametrize("preset", ["an", "tsm", "x3d"])
def test_contract_weights_match_checksums(preset):
    entries = load_fixture(f"state_dict_keys_{preset}.json")["entries"]
    for e in entries[:: max(1, len(entries) // 60)] + entries[-3:]:
        v = contract_tensor(e["key"], tuple(e["shape"]))
        assert str(v.dtype).removeprefix("torch.") == e["dtype"]
        sum_tol, value_tol = contract_tolerances(e)  # randn differs by a few ulps across CPUs
        assert v.double().sum().item() == pytest.approx(e["sum"], rel=0, abs=sum_tol)
        assert v.double().abs().sum().item() == pytest.approx(e["abs_sum"], rel=0, abs=sum_tol)
        assert v.flatten()[:3].tolist() == pytest.approx(e["first3"][: v.numel()], rel=0, abs=value_tol)


def test_fixture_frames_match_checksums():
    # Spot values from the fixture README (full-video SHA-256 would need all 235 frames; sums cover vid0).
    assert fixture_frame(0, 1)[0, 0].tolist() == [63, 154, 89]
    assert fixture_frame(0, 1)[100, 200].tolist() == [96, 139, 122]
    assert fixture_frame(2, 120)[255, 319].tolist() == [129, 127, 113]
    assert sum(int(fixture_frame(0, t).sum(dtype=np.int64)) for t in range(1, 41)) == 1253230519
