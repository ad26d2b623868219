"""One HTTP client per backend behind :class:`BaseHTTPClient` (the spec's import path).

==============  =====================  ==========================================
backend         class                  structured output
==============  =====================  ==========================================
``openai``      :class:`OpenAIClient`  strict ``response_format: json_schema``
``vllm_api``    :class:`VLLMClient`    ``structured_outputs: {"json": schema}``
``ollama_api``  :class:`OllamaClient`  ``format: schema`` on ``/api/chat``
``local``       :class:`LocalClient`   ``response_format: json_schema`` (llama.cpp)
==============  =====================  ==========================================

Which backend name builds which client is said in :mod:`chainette.engine.backend_registry`.
"""

from chainette.engine.backends.base import BaseHTTPClient, MalformedResponseError, split_think
from chainette.engine.backends.local import LocalClient
from chainette.engine.backends.ollama import OllamaClient
from chainette.engine.backends.openai import OpenAIClient
from chainette.engine.backends.vllm import VLLMClient

__all__ = [
    "BaseHTTPClient",
    "LocalClient",
    "MalformedResponseError",
    "OllamaClient",
    "OpenAIClient",
    "VLLMClient",
    "split_think",
]
