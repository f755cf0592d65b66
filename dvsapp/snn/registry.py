"""Architecture names -> model classes: build any shipped SNN from its :class:`ModelConfig`.

The model families are imported lazily, so asking for a ResNet never imports the VGG code,
and a family that is missing or broken gives a one-line :class:`ConfigError` naming it.
Tests and plug-ins may add architectures with :func:`register_architecture`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from dvsapp.errors import ConfigError
from dvsapp.snn.base import ModelConfig, SpikingModel

#: arch -> (module, model class); the builder function of each arch has the arch's name.
_BUILTIN: dict[str, tuple[str, str]] = {
    "resnet17": ("dvsapp.snn.resnet", "TdbnResNet"),
    "resnet19": ("dvsapp.snn.resnet", "TdbnResNet"),
    "resnet_small": ("dvsapp.snn.resnet", "TdbnResNet"),
    "vgg9": ("dvsapp.snn.vgg", "BnttVGG"),
    "vgg11": ("dvsapp.snn.vgg", "BnttVGG"),
    "vgg_small": ("dvsapp.snn.vgg", "BnttVGG"),
    "graph": ("dvsapp.snn.graph.model", "GraphModel"),
}

#: The architecture of networks from elsewhere (NIR, ...): built from ``ModelConfig.graph``.
GRAPH_ARCH = "graph"
#: Every architecture our trainer builds (tdBN ResNets, then BNTT VGGs).
ARCHITECTURES: tuple[str, ...] = tuple(a for a in _BUILTIN if a != GRAPH_ARCH)

ModelFactory = Callable[[ModelConfig], SpikingModel]
_registered: dict[str, tuple[ModelFactory, Callable[..., ModelConfig]]] = {}


def register_architecture(
    arch: str, factory: ModelFactory, default: Callable[..., ModelConfig] | None = None
) -> None:
    """Make ``arch`` buildable: ``factory(config)`` builds it, ``default(**overrides)`` gives
    its default config (``ModelConfig(arch=arch, **overrides)`` when None)."""
    if arch in _BUILTIN:
        raise ConfigError(f"architecture {arch!r} is built in and cannot be replaced")

    def _default(**overrides: Any) -> ModelConfig:
        return ModelConfig(arch=arch, **overrides)

    _registered[arch] = (factory, default or _default)


def unregister_architecture(arch: str) -> None:
    """Forget an architecture added with :func:`register_architecture` (no error if absent)."""
    _registered.pop(arch, None)


def known_architectures() -> tuple[str, ...]:
    """The shipped architectures, graph models and any registered ones."""
    return (*ARCHITECTURES, GRAPH_ARCH, *(a for a in _registered if a not in _BUILTIN))


def _check_arch(arch: str) -> None:
    if arch not in _BUILTIN and arch not in _registered:
        known = ", ".join(known_architectures())
        raise ConfigError(f"unknown architecture {arch!r} (known: {known})")


def _family_module(arch: str) -> Any:
    module, _ = _BUILTIN[arch]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        msg = f"architecture {arch!r}: its model family {module} is unavailable: {e}"
        raise ConfigError(msg) from None


def model_class(arch: str) -> type[SpikingModel]:
    """The class that implements a shipped ``arch`` (imports its family)."""
    _check_arch(arch)
    if arch in _registered:
        raise ConfigError(f"architecture {arch!r} is registered by a factory, not a class")
    cls = getattr(_family_module(arch), _BUILTIN[arch][1], None)
    if cls is None:
        raise ConfigError(f"architecture {arch!r}: {_BUILTIN[arch][0]} lacks {_BUILTIN[arch][1]}")
    return cls


def build_model(config: ModelConfig) -> SpikingModel:
    """A freshly initialised model for ``config`` (in training mode, on the CPU)."""
    _check_arch(config.arch)
    try:
        if config.arch in _registered:
            return _registered[config.arch][0](config)
        return model_class(config.arch)(config)
    except (ValueError, TypeError) as e:  # the families reject bad configs with ValueError
        raise ConfigError(f"architecture {config.arch!r}: {e}") from None


def default_config(arch: str, **overrides: Any) -> ModelConfig:
    """The config the arch's builder (e.g. ``resnet17(**overrides)``) produces.

    Uses the family's own ``default_config(arch, **overrides)`` where it has one; otherwise
    it builds the model and keeps its config (not the ``meta`` device: its first use imports
    torch._dynamo, 1.5 s).
    """
    _check_arch(arch)
    try:
        if arch in _registered:
            return _registered[arch][1](**overrides)
        module = _family_module(arch)
        family_default = getattr(module, "default_config", None)
        if family_default is not None:
            return family_default(arch, **overrides)
        builder = getattr(module, arch, None)
        if builder is None:
            raise ConfigError(f"architecture {arch!r}: {_BUILTIN[arch][0]} has no builder {arch}()")
        return builder(**overrides).config
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"architecture {arch!r}: bad overrides {sorted(overrides)}: {e}"
        ) from None
