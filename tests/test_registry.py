"""The plugin system: registration, lookup errors, isolation of failing plugins."""

from __future__ import annotations

import warnings

import ctbench
import pytest
from ctbench.core.hookspecs import KINDS
from ctbench.core.registry import (
    DuplicatePluginError,
    PluginWarning,
    Registry,
    UnknownPluginError,
    default_registry,
)


def _factory(*args, **options):
    return ("built", args, options)


class ArchitecturePlugin:
    """A plugin object with one hook, registering the given names."""

    def __init__(self, *names: str) -> None:
        self.names = names

    @ctbench.hookimpl
    def register_architectures(self, register):
        for name in self.names:
            register(name, _factory, description=f"model {name}", explainable=True)


class EveryKindPlugin:
    @ctbench.hookimpl
    def register_architectures(self, register):
        register("arch-a", _factory, description="an architecture")

    @ctbench.hookimpl
    def register_explainers(self, register):
        register("expl-a", _factory, description="an explainer")

    @ctbench.hookimpl
    def register_segmenters(self, register):
        register("seg-a", _factory, description="a segmenter")

    @ctbench.hookimpl
    def register_downsamplers(self, register):
        register("down-a", _factory, description="a downsampler")

    @ctbench.hookimpl
    def register_datasets(self, register):
        register("data-a", _factory, description="a dataset")

    @ctbench.hookimpl
    def register_labelers(self, register):
        register("label-a", _factory, description="a report labeler")


def test_every_kind_is_collected_with_provider_and_meta():
    registry = Registry.from_plugins(
        {"dist-every": EveryKindPlugin(), "dist-b": ArchitecturePlugin("b")}
    )
    assert registry.list_plugins() == {
        "architectures": ["arch-a", "b"],
        "explainers": ["expl-a"],
        "segmenters": ["seg-a"],
        "downsamplers": ["down-a"],
        "datasets": ["data-a"],
        "labelers": ["label-a"],
    }
    entry = registry.get("architectures", "b")
    assert (entry.kind, entry.name, entry.provider, entry.description) == (
        "architectures",
        "b",
        "dist-b",
        "model b",
    )
    assert entry.meta == {"explainable": True}
    assert registry.create("explainers", "expl-a", 1, k=2) == ("built", (1,), {"k": 2})


def test_lookup_is_case_insensitive_and_accepts_underscores():
    registry = Registry.from_plugins({"d": ArchitecturePlugin("axialnet-maxpool", "3dconv")})
    assert registry.get("architectures", "AxialNet_MaxPool").name == "axialnet-maxpool"
    assert registry.get("architectures", "3DConv").name == "3dconv"


def test_unknown_name_lists_known_names_and_suggests_the_closest():
    registry = Registry.from_plugins({"d": ArchitecturePlugin("axialnet", "bodycam", "ctnet")})
    with pytest.raises(UnknownPluginError) as caught:
        registry.get("architectures", "axialnt")
    message = str(caught.value)
    assert "unknown architecture 'axialnt'" in message
    assert "Did you mean 'axialnet'?" in message
    assert "Known architectures: axialnet, bodycam, ctnet." in message
    assert isinstance(caught.value, LookupError)


def test_unknown_name_when_nothing_is_installed_says_so():
    registry = Registry.from_plugins({})
    with pytest.raises(UnknownPluginError, match="No explainers are installed"):
        registry.get("explainers", "hirescam")


def test_unknown_kind_is_a_value_error():
    with pytest.raises(ValueError, match="kinds are architectures"):
        Registry.from_plugins({}).names("models")


def test_duplicate_name_warns_at_load_and_errors_naming_both_providers():
    with pytest.warns(PluginWarning, match="'shared' is registered by 'dist-one' and 'dist-two'"):
        registry = Registry.from_plugins(
            {
                "dist-one": ArchitecturePlugin("shared", "one"),
                "dist-two": ArchitecturePlugin("shared"),
            }
        )
    with pytest.raises(DuplicatePluginError) as caught:
        registry.get("architectures", "shared")
    assert "'dist-one' and 'dist-two'" in str(caught.value)
    assert registry.get("architectures", "one").provider == "dist-one"  # the rest still works
    assert [e.provider for e in registry.entries("architectures") if e.name == "shared"] == [
        "dist-one",
        "dist-two",
    ]


class RaisingPlugin:
    @ctbench.hookimpl
    def register_architectures(self, register):
        register("early", _factory, description="registered before the error")
        raise RuntimeError("boom")


class BadRegistrationsPlugin:
    @ctbench.hookimpl
    def register_architectures(self, register):
        register("no-description", _factory)
        register("Bad Name", _factory, description="x")
        register("not-callable", 42, description="x")
        register("fine", _factory, description="ok")


class WrongSignaturePlugin:
    @ctbench.hookimpl
    def register_architectures(self, register, extra):
        register("never", _factory, description="x")


def test_failing_hook_warns_with_plugin_name_and_others_keep_working():
    with pytest.warns(
        PluginWarning, match="'raising' failed in register_architectures: RuntimeError: boom"
    ):
        registry = Registry.from_plugins(
            {"raising": RaisingPlugin(), "good": ArchitecturePlugin("good")}
        )
    assert registry.names("architectures") == ["early", "good"]


def test_bad_registrations_are_skipped_one_by_one():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = Registry.from_plugins({"sloppy": BadRegistrationsPlugin()})
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    assert len(messages) == 3
    assert any("non-empty description" in m for m in messages)
    assert any("'Bad Name'" in m for m in messages)
    assert any("not callable" in m for m in messages)
    assert all("'sloppy'" in m for m in messages)
    assert registry.names("architectures") == ["fine"]


def test_plugin_with_wrong_hook_signature_is_rejected_alone():
    with pytest.warns(PluginWarning, match="'wrong' is not a valid plugin"):
        registry = Registry.from_plugins(
            {"wrong": WrongSignaturePlugin(), "good": ArchitecturePlugin("g")}
        )
    assert registry.names("architectures") == ["g"]


def test_registries_are_independent():
    first = Registry.from_plugins({"a": ArchitecturePlugin("x")})
    second = Registry.from_plugins({"b": ArchitecturePlugin("y")})
    assert first.names("architectures") == ["x"]
    assert second.names("architectures") == ["y"]
    assert first.manager is not second.manager


FAILING_MODULE = "raise ImportError('needs a library that is not installed')\n"
GOOD_MODULE = """
import ctbench

@ctbench.hookimpl
def register_datasets(register):
    register("test-data", dict, description="a dataset from a test plugin")
"""


def test_entry_point_that_fails_to_import_warns_and_others_load(plugin_site):
    plugin_site.add_module("ctbench_test_broken", FAILING_MODULE)
    plugin_site.add_module("ctbench_test_good", GOOD_MODULE)
    plugin_site.install("broken-dist", {"broken": "ctbench_test_broken"})
    plugin_site.install("good-dist", {"good": "ctbench_test_good"})
    with pytest.warns(PluginWarning) as caught:
        names = ctbench.list_plugins()
    messages = [str(w.message) for w in caught]
    assert any(
        "'broken'" in m and "'broken-dist'" in m and "ImportError: needs a library" in m
        for m in messages
    )
    assert "test-data" in names["datasets"]
    assert default_registry().get("datasets", "test-data").provider == "good-dist"
    assert ctbench.create_dataset("test-data", a=1) == {"a": 1}


def test_default_registry_is_lazy_and_resettable(plugin_site):
    before = default_registry()
    assert default_registry() is before
    plugin_site.add_module("ctbench_test_good", GOOD_MODULE)
    plugin_site.install("good-dist", {"good": "ctbench_test_good"})  # resets the default
    after = default_registry()
    assert after is not before
    assert "test-data" in after.names("datasets")


def test_public_api_names():
    for name in (
        "create_model",
        "create_explainer",
        "create_segmenter",
        "create_downsampler",
        "create_dataset",
        "list_plugins",
        "hookimpl",
        "hookspec",
        "__version__",
    ):
        assert hasattr(ctbench, name), name
    assert set(ctbench.list_plugins()) == set(KINDS)
