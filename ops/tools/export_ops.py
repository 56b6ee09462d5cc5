"""ONNX forms of the operations our models use that torch's ONNX exporter has no form for, and the record of how
every delicate operation of the dynamic models is exported (written into the export's deploy.json).

`aten::cummax` needs a form of its own: ONNX has no running maximum. It is exported unrolled over its (static)
length as a chain of elementwise Max, which is exact (a maximum never rounds); the indices follow torch's rule
(the latest position holding the running maximum, `>=`). X3D's head averages its map with a kernel read from
the map's shape, which ONNX wants constant: it becomes GlobalAveragePool (registered at opset 20, the least
the export accepts, so that it takes precedence over torch's own form); TAdaConv's adaptive pooling to
(None, 1, 1), which torch's exporter refuses, becomes a ReduceMean over the pooled axes, and its convolutions by
weights computed per video (one grouped convolution whose groups count the videos, which ONNX cannot express
for a batch it does not know) are exported with the calibration moved to the activations
(`TAdaConv2d.calibrate_activations`: the same convolution up to float rounding). The other operations have exact ONNX
forms (OPERATIONS says which); where a float computation decides an integer (a frame index, a crop corner), the
integer is exact unless the float lands within rounding of a step, which the parity tests check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.onnx import symbolic_helper, symbolic_opset9

from archs.tadaconv import calibrate_activations

# How the frame selection, patch cropping and running maxima of the dynamic models reach ONNX.
OPERATIONS = {
    "cummax": "no ONNX operator: unrolled into a chain of Max over the static axis (exact values; indices by >=)",
    "avg_pool3d over the whole map (X3D head)": "its kernel comes from the map's shape, which ONNX needs "
    "constant: GlobalAveragePool (the same mean, float rounding only)",
    "adaptive_avg_pool3d to (None, 1, 1) (TAdaConv)": "ReduceMean over the pooled axes (float rounding only)",
    "convolution by a computed weight (TAdaConv)": "the calibration alpha moved from the weight to the "
    "activations (input channels scaled before one shared Conv, or output channels after it): the same "
    "convolution, float rounding only",
    "top-k / argmax frame selection": "ArgMax / ReduceMax / TopK (exact; ArgMax takes the first maximum, as torch)",
    "gather of frames and patches": "Gather / GatherElements / GatherND (exact copies)",
    "integer crops (AdaFocus V1)": "the corner is Floor(a * (S - P)) cast to int64, the crop a Gather of whole pixels",
    "affine_grid + grid_sample (Uni-AdaFocus, AdaFocus V2)": "AffineGrid + GridSample (bilinear, zeros, "
    "align_corners=0): the same formula, float rounding only",
    "interpolate (glance resize, per-frame actions, ResKD student)": "Resize (linear, pytorch_half_pixel): the "
    "same formula, float rounding only",
    "GRU (AdaFocus V1 / V2 policies and classifier)": "GRU (linear_before_reset=1, torch's gate order)",
}


def _cummax(g, x, dim):
    """ONNX form of torch.cummax(x, dim): (values, indices), unrolled over the static length of `dim`."""
    d = symbolic_helper._get_const(dim, "i", "dim")
    sizes = g.original_node.outputsAt(0).type().sizes()  # the traced shape: the length of `dim` is static
    d = d + len(sizes) if d < 0 else d
    if d == 0:
        raise RuntimeError("cummax over the batch axis has no static length; the exporter cannot unroll it")
    n = sizes[d]
    parts = [symbolic_helper._slice_helper(g, x, axes=[d], starts=[i], ends=[i + 1]) for i in range(n)]
    run = parts[0]
    index = g.op("ConstantOfShape", g.op("Shape", run), value_t=torch.tensor([0], dtype=torch.int64))
    values, indices = [run], [index]
    for i in range(1, n):
        newer = g.op("GreaterOrEqual", parts[i], run)
        run = g.op("Max", run, parts[i])
        index = g.op("Where", newer, g.op("Constant", value_t=torch.tensor(i, dtype=torch.int64)), index)
        values.append(run)
        indices.append(index)
    return g.op("Concat", *values, axis_i=d), g.op("Concat", *indices, axis_i=d)


def _avg_pool3d(g, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """avg_pool3d: AveragePool with torch's kernel, stride, padding and count_include_pad; a kernel computed from
    the map's (traced) shape, the whole map (X3D's head): GlobalAveragePool."""
    kernel = symbolic_helper._maybe_get_const(kernel_size, "is")
    if not isinstance(kernel, list):
        out = g.original_node.outputsAt(0).type().sizes()
        if out is None or any(s != 1 for s in out[2:]):
            raise RuntimeError(
                "avg_pool3d with a kernel computed from shapes: only the whole-map average exports"
            )
        return g.op("GlobalAveragePool", x)
    if not symbolic_helper._is_none(divisor_override) or symbolic_helper._get_const(
        ceil_mode, "i", "ceil_mode"
    ):
        raise RuntimeError("avg_pool3d with divisor_override or ceil_mode does not export here")
    strides = symbolic_helper._get_const(stride, "is", "stride") or kernel
    pads = symbolic_helper._get_const(padding, "is", "padding")
    return g.op(
        "AveragePool",
        x,
        kernel_shape_i=kernel,
        strides_i=strides,
        pads_i=pads + pads,
        count_include_pad_i=symbolic_helper._get_const(count_include_pad, "i", "count_include_pad"),
    )


def _adaptive_avg_pool3d(g, x, output_size):
    """adaptive_avg_pool3d to sizes of 1 or None (keep the axis), e.g. TAdaConv's (None, 1, 1): ReduceMean over
    the axes pooled to 1, read from the traced shapes; any other size: torch's own form."""
    sizes = symbolic_helper._maybe_get_const(output_size, "is")
    if isinstance(sizes, list) and all(s == 1 for s in sizes):
        return g.op("GlobalAveragePool", x)
    node = g.original_node
    inp, out = node.inputsAt(0).type().sizes(), node.outputsAt(0).type().sizes()
    axes = [i for i in range(2, len(out)) if out[i] != inp[i]]
    if any(out[i] != 1 for i in axes):
        return symbolic_opset9.adaptive_avg_pool3d(g, x, output_size)
    if not axes:  # already of the pooled size (a 1 x 1 map): ReduceMean without axes would reduce them all
        return g.op("Identity", x)
    return g.op(
        "ReduceMean", x, g.op("Constant", value_t=torch.tensor(axes, dtype=torch.int64)), keepdims_i=1
    )


def register_onnx_forms() -> None:
    """Registers the ONNX forms above with torch's (TorchScript-based) ONNX exporter; idempotent."""
    torch.onnx.register_custom_op_symbolic("aten::cummax", _cummax, 9)
    torch.onnx.register_custom_op_symbolic("aten::avg_pool3d", _avg_pool3d, 20)
    torch.onnx.register_custom_op_symbolic("aten::adaptive_avg_pool3d", _adaptive_avg_pool3d, 20)


@contextlib.contextmanager
def calibrated_activations(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every TAdaConv2d of `module` calibrates its activations instead of its weight (the form
    ONNX can express); restored on exit."""
    saved = calibrate_activations(module)
    try:
        yield module
    finally:
        for m, value in saved.items():
            m.calibrate_activations = value
