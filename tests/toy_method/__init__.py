"""A method added from outside the framework: one package that registers itself when imported (as the built-in
ones do, each imported once by models/__init__.py)."""

from __future__ import annotations

from models.core import Method, register_method
from tests.toy_method.model import Toy, ToyConfig

METHOD = register_method(
    Method(
        "toy",
        Toy,
        "a toy: mean colour per frame, an MLP",
        config_cls=ToyConfig,
        flags=("toy_hidden",),
        add_arguments=lambda g: g.add_argument("--toy_hidden", type=int, help="toy embedding width (16)"),
    )
)
