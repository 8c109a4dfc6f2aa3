"""`dlpipe.registry`: named entries, duplicates refused, typos answered with the closest name."""

from __future__ import annotations

import pytest

from dlpipe.errors import ConfigError
from dlpipe.registry import Registry


def test_register_get_and_list():
    registry: Registry[int] = Registry("backbone")

    @registry.register("small_cnn")
    def build():
        return 1

    registry.add("efficientnet_lite0", 2)
    assert registry.get("small_cnn") is build and registry.get("efficientnet_lite0") == 2
    assert registry.names() == ["efficientnet_lite0", "small_cnn"] and list(registry) == registry.names()
    assert "small_cnn" in registry and "resnet" not in registry


def test_duplicates_and_unknown_names():
    registry: Registry[int] = Registry("backbone")
    registry.add("efficientnet_lite0", 1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.add("efficientnet_lite0", 2)
    with pytest.raises(ConfigError, match=r"model.backbone: unknown backbone 'efficientnet_lite' \(did you mean "
                                          r"'efficientnet_lite0'\?\); choose one of: efficientnet_lite0"):
        registry.get("efficientnet_lite", key="model.backbone")
