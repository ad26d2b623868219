"""The OpenAI Files and Batches APIs (and any gateway that copies them), over aiohttp.

* ``POST /files`` (multipart: ``purpose=batch``, ``file``) -> a file object (``id``);
* ``POST /batches`` ``{"input_file_id", "endpoint": "/v1/chat/completions",
  "completion_window": "24h", "metadata"}`` -> a batch object;
* ``GET /batches/{id}``, ``POST /batches/{id}/cancel``, ``GET /batches?limit=&after=``;
* ``GET /files/{id}/content`` -> the output or error file (streamed to disk).

Paths are relative to the engine's endpoint (``https://api.openai.com/v1``), with its key.
Transient failures (connection errors, timeouts, 429, 5xx) are retried with back-off;
the errors raised are the engine errors of an online request (the same wording, the key
redacted).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainette.engine.backends.base import dumps, loads
from chainette.engine.batch.record import BatchRecord
from chainette.engine.batch.wire import CHAT_URL
from chainette.engine.retry import RetryPolicy
from chainette.errors import EngineConnectionError, EngineError, EngineTimeoutError, MalformedResponseError

if TYPE_CHECKING:
    import aiohttp

    from chainette.engine.backends.base import BaseHTTPClient

FIND_PAGES = 20
"""pages of 100 batches looked through for a batch created before a crash"""

__all__ = ["OpenAIBatchAPI"]


class OpenAIBatchAPI:
    """The Batch API of the endpoint ``client`` (an online client of the same engine) talks to."""

    kind = "openai"

    def __init__(
        self,
        client: BaseHTTPClient,
        *,
        run_key: str,
        completion_window: str = "24h",
        policy: RetryPolicy | None = None,
        connector_factory: Any = None,
    ) -> None:
        self.client = client
        self.name = client.name
        self.base = client.endpoint
        self.run_key = run_key
        self.completion_window = completion_window
        self.policy = policy or RetryPolicy(max_retries=max(3, client.cfg.max_retries))
        self._headers = {k: v for k, v in client._headers.items() if k.lower() != "content-type"}
        self._connector_factory = connector_factory
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- transport ---------------------------------------------------------------------
    def _bind(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            import aiohttp

            self._loop = loop
            timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=max(self.client.cfg.timeout, 60))
            connector = self._connector_factory() if self._connector_factory else None
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=timeout, connector=connector, trust_env=False
            )
        return self._session

    async def _call(
        self, method: str, path: str, *, json: Any = None, form: Any = None, dest: Path | None = None
    ) -> Any:
        """One API call with retries; the decoded JSON reply (or ``None`` when streamed to ``dest``)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(method, path, json=json, form=form, dest=dest)
            except EngineError as exc:
                if not self.policy.should_retry(exc, attempt):
                    exc.attempts = attempt  # type: ignore[attr-defined]
                    raise
                await asyncio.sleep(self.policy.delay(attempt, exc))

    async def _once(self, method: str, path: str, *, json: Any, form: Any, dest: Path | None) -> Any:
        import aiohttp

        session = self._bind()
        url = self.base + path
        data: Any = None
        headers = {}
        opened: Any = None
        if json is not None:
            data, headers = dumps(json), {"Content-Type": "application/json"}
        elif form is not None:
            data, opened = form()
        try:
            async with session.request(method, url, data=data, headers=headers) as resp:
                status = resp.status
                if status >= 300:
                    raw = await resp.read()
                    self.client._raise_status(
                        status, raw, resp.headers.get("Retry-After"), resp.headers.get("x-should-retry")
                    )
                if dest is not None:
                    tmp = dest.with_name(dest.name + ".part")
                    with open(tmp, "wb") as f:
                        async for chunk in resp.content.iter_chunked(1 << 20):
                            f.write(chunk)
                        f.flush()
                        os.fsync(f.fileno())
                    os.replace(tmp, dest)
                    return None
                raw = await resp.read()
        except asyncio.TimeoutError as exc:
            raise EngineTimeoutError(f"engine '{self.name}': no reply from {url}", engine=self.name) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise EngineConnectionError(
                f"engine '{self.name}': cannot reach {url}: {self.client._redact(str(exc)) or type(exc).__name__}",
                engine=self.name,
            ) from exc
        finally:
            if opened is not None:
                opened.close()
        try:
            return loads(raw)
        except ValueError:
            raise MalformedResponseError(
                f"engine '{self.name}': {method} {path} did not answer JSON: "
                f"{self.client._redact(raw[:200].decode('utf-8', 'replace'))}",
                engine=self.name,
            ) from None

    # -- the protocol ------------------------------------------------------------------
    async def upload(self, path: Path, record: BatchRecord) -> str:
        import aiohttp

        def form() -> tuple[aiohttp.FormData, Any]:
            fd = aiohttp.FormData()
            fd.add_field("purpose", "batch")
            f = open(path, "rb")
            fd.add_field("file", f, filename=path.name, content_type="application/jsonl")
            return fd, f

        obj = await self._call("POST", "/files", form=form)
        file_id = obj.get("id") if isinstance(obj, dict) else None
        if not isinstance(file_id, str):
            raise MalformedResponseError(f"engine '{self.name}': file upload answered without an id", engine=self.name)
        return file_id

    def metadata(self, record: BatchRecord) -> dict[str, str]:
        return {"chainette_run": self.run_key, "chainette_batch": record.key}

    async def create(self, file_id: str, record: BatchRecord) -> dict[str, Any]:
        return await self._call(
            "POST",
            "/batches",
            json={
                "input_file_id": file_id,
                "endpoint": CHAT_URL,
                "completion_window": self.completion_window,
                "metadata": self.metadata(record),
            },
        )

    async def retrieve(self, record: BatchRecord) -> dict[str, Any]:
        return await self._call("GET", f"/batches/{record.batch_id}")

    async def cancel(self, record: BatchRecord) -> dict[str, Any]:
        return await self._call("POST", f"/batches/{record.batch_id}/cancel")

    async def find(self, record: BatchRecord) -> dict[str, Any] | None:
        """The batch created for ``record`` before the driver could journal it, if any."""
        wanted = self.metadata(record)
        after: str | None = None
        for _ in range(FIND_PAGES):
            page = await self._call("GET", "/batches?limit=100" + (f"&after={after}" if after else ""))
            data = page.get("data") if isinstance(page, dict) else None
            for batch in data or []:
                meta = batch.get("metadata") if isinstance(batch, dict) else None
                if isinstance(meta, dict) and all(meta.get(k) == v for k, v in wanted.items()):
                    return batch
            if not data or not page.get("has_more"):
                return None
            after = page.get("last_id") or data[-1].get("id")
        return None

    async def download(self, file_id: str, dest: Path) -> None:
        await self._call("GET", f"/files/{file_id}/content", dest=dest)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self._loop:
                await session.close()
