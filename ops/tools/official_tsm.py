"""Loads the official Uni-AdaFocus-TSM code (LeapLabTHU/Uni-AdaFocus, sub-project "Uni-AdaFocus-TSM with
Experiments on Sth-Sth V1&V2 and Jester") from a checkout, for side-by-side comparisons on the CPU.

The official sub-project has top-level packages named `ops` and `archs`, like this project. They are imported
with this project's `ops*` / `archs*` entries of sys.modules set aside and kept apart afterwards
(`OfficialTSM.namespace()` swaps them back in for every call that may import lazily). Nothing of the official
code is changed; CPU-only shims, as in tests/fixtures/official/README.md section 5: torchvision's `nms` /
`qnms` operator schemas are defined when the installed torchvision lacks its compiled ops, and ResNet-50 is
built without pretrained weights (`pretrain='none'`, random weights, overwritten by the caller).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from argparse import Namespace
from collections.abc import Iterator

import torch

SUBPROJECT = "Uni-AdaFocus-TSM with Experiments on Sth-Sth V1&V2 and Jester"
_PACKAGES = ("ops", "archs")
_SHIM_LIB = []  # keeps the torchvision operator schemas alive


class OfficialUnavailable(RuntimeError):
    """The official code cannot be found or imported (the message says why)."""


def find_subproject(root: str) -> str:
    """Returns the TSM sub-project folder of an official checkout `root` (or `root` itself if it is one)."""
    for cand in (os.path.join(root, SUBPROJECT), root):
        if os.path.isfile(os.path.join(cand, "archs", "uni_adafocus_tsm.py")):
            return cand
    raise OfficialUnavailable(f"no {SUBPROJECT}/archs/uni_adafocus_tsm.py under {root!r}")


def _torchvision_shim() -> None:
    try:
        import torchvision  # noqa: F401
    except ImportError:  # not installed: the official imports fail with their own message
        return
    except RuntimeError as err:  # CPU torch + a torchvision wheel built for another torch: no compiled ops
        if "torchvision::nms" not in str(err):
            raise
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _SHIM_LIB.append(lib)
        import torchvision  # noqa: F401


def _ours(name: str) -> bool:
    return name.split(".")[0] in _PACKAGES


class OfficialTSM:
    """The official TSM sub-project's modules: `AdaFocus` (archs.uni_adafocus_tsm), `TSNDataSet`
    (ops.dataset), `transforms` (ops.transforms), imported from `root` under a private copy of sys.modules."""

    def __init__(self, root: str) -> None:
        self.dir = find_subproject(root)
        self._modules: dict[str, object] = {}
        try:
            _torchvision_shim()
            with self.namespace():
                self.arch = importlib.import_module("archs.uni_adafocus_tsm")
                self.dataset = importlib.import_module("ops.dataset")
                self.transforms = importlib.import_module("ops.transforms")
                importlib.import_module("ops.temporal_shift")
        except (ImportError, RuntimeError, SyntaxError) as err:
            raise OfficialUnavailable(f"cannot import the official code from {self.dir!r}: {err!r}") from err

    @contextlib.contextmanager
    def namespace(self) -> Iterator[None]:
        """Within: `ops` / `archs` are the official packages (this project's are restored afterwards)."""
        saved = {k: sys.modules.pop(k) for k in [k for k in sys.modules if _ours(k)]}
        sys.modules.update(self._modules)
        sys.path.insert(0, self.dir)
        try:
            yield
        finally:
            sys.path.remove(self.dir)
            self._modules = {k: sys.modules.pop(k) for k in [k for k in sys.modules if _ours(k)]}
            sys.modules.update(saved)

    def args(self, num_classes: int = 174, patch_size: int = 128, **overrides) -> Namespace:
        """The README's Sth-Sth command line (8 glance, 36 candidates, 12 focus frames, P=128) as `args`."""
        args = Namespace(
            num_glance_segments=8,
            num_input_focus_segments=36,
            num_focus_segments=12,
            input_size=224,
            patch_size=patch_size,
            feature_map_channels=1280,
            modality="RGB",
            consensus_type="avg",
            dropout=0.5,
            img_feature_dim=256,
            no_partialbn=True,
            pretrain="none",
            shift=True,
            shift_div=8,
            shift_place="blockres",
            tune_from=None,
            dataset="something",
            temporal_pool=False,
            non_local=False,
            stn_hidden_dim=128,
            temporal_hidden_dim=64,
            device=torch.device("cpu"),
        )
        for k, v in overrides.items():
            setattr(args, k, v)
        return args

    def build_model(self, num_classes: int = 174, patch_size: int = 128) -> torch.nn.Module:
        """The official AdaFocus model (random weights), quietly (TSN prints its configuration)."""
        import torchvision

        resnet50 = torchvision.models.resnet50
        # TSN calls torchvision.models.resnet50(pretrained: bool) positionally; recent torchvision takes
        # keywords only. Random weights either way (pretrain='none').
        torchvision.models.resnet50 = lambda *a, **k: resnet50(weights=None)
        try:
            with self.namespace(), contextlib.redirect_stdout(open(os.devnull, "w")):
                return self.arch.AdaFocus(num_classes, self.args(num_classes, patch_size))
        finally:
            torchvision.models.resnet50 = resnet50
