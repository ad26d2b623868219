import importlib

import chainette


def test_all_is_sorted_and_complete():
    assert chainette.__all__ == sorted(chainette.__all__)
    public = {n for n in chainette._EXPORTS}
    assert set(chainette.__all__) == public
    for name in chainette.__all__:
        assert getattr(chainette, name) is not None, name


def test_issue_names_are_exported():
    required = {
        "Step",
        "Chain",
        "Branch",
        "JoinBranch",
        "ApplyNode",
        "apply",
        "Node",
        "Graph",
        "Executor",
        "AsyncExecutor",
        "SamplingParams",
        "Result",
        "register_engine",
        "get_engine_config",
        "EngineConfig",
        "FakeEngine",
        "RunWriter",
        "StreamWriter",
    }
    assert required <= set(chainette.__all__)


def test_spec_module_paths_still_import():
    assert importlib.import_module("chainette.core.step").Step is chainette.Step
    assert importlib.import_module("chainette.core.apply").ApplyNode is chainette.ApplyNode
    assert importlib.import_module("chainette.core.join_branch").JoinBranch is chainette.JoinBranch
    assert importlib.import_module("chainette.io.writer").RunWriter is chainette.RunWriter
    assert importlib.import_module("chainette.io.stream_writer").StreamWriter is chainette.StreamWriter
    assert importlib.import_module("chainette.core.graph").Graph is chainette.Graph


def test_unknown_attribute_raises():
    import pytest

    with pytest.raises(AttributeError):
        chainette.NoSuchThing  # noqa: B018
