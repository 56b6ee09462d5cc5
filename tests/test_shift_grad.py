"""The temporal shift's own backward (archs/temporal_shift.py) gives bit for bit the gradients of autograd
through the slice assignments, in both memory layouts, and is itself differentiable."""

from __future__ import annotations

import importlib

import pytest
import torch

ts = importlib.import_module("archs.temporal_shift")


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_shift_gradient_equals_autograd_through_the_slices(fmt):
    torch.manual_seed(0)
    x = torch.randn(24, 64, 5, 5).contiguous(memory_format=fmt).requires_grad_()
    ref = x.detach().clone().requires_grad_()
    g = torch.randn(24, 64, 5, 5)
    y, y_ref = ts.temporal_shift(x, 12), ts._shift(ref, 12, 8)  # the latter: autograd through slices
    assert y.grad_fn is not None and "TemporalShift" in type(y.grad_fn).__name__
    assert torch.equal(y, y_ref)
    (gx,) = torch.autograd.grad((y * g).sum(), x)
    (gr,) = torch.autograd.grad((y_ref * g).sum(), ref)
    assert torch.equal(gx, gr)
    assert gx[:12, :8].abs().sum() > 0 and torch.equal(gx[::12, :8], torch.zeros_like(gx[::12, :8]))


def test_shift_gradient_is_differentiable():
    x = torch.randn(8, 16, 2, 2, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: ts.temporal_shift(a, 4), (x,))
    assert torch.autograd.gradgradcheck(lambda a: ts.temporal_shift(a, 4), (x,))
    with torch.no_grad():  # no graph: the plain shift
        assert torch.equal(ts.temporal_shift(x, 4), ts._shift(x, 4, 8))
