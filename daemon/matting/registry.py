"""Model builders by name, so a second network can be added without touching callers."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from daemon.matting.isnet import ISNet

MODEL_BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "isnet-general-use": ISNet,
}
DEFAULT_MODEL = "isnet-general-use"


def build_model(name: str = DEFAULT_MODEL) -> nn.Module:
    try:
        builder = MODEL_BUILDERS[name]
    except KeyError:
        known = ", ".join(sorted(MODEL_BUILDERS))
        raise ValueError(f"unknown model {name!r}; known: {known}") from None
    return builder()
