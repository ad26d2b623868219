"""Wire format per backend, faked at the transport (a real aiohttp server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import BaseModel

from chainette.engine.backends.strict_schema import to_strict_schema
from chainette.engine.factory import create_engine
from chainette.engine.fake import FakeEngine
from chainette.engine.http_client import LocalClient, OllamaClient, OpenAIClient, VLLMClient, split_think
from chainette.engine.protocol import CompletionRequest, SamplingParams
from chainette.engine.registry import EngineConfig
from chainette.errors import EmptyCompletionError, RefusalError

from ._support import fake_api, ok, payload


class Sentiment(BaseModel):
    label: str
    score: float = 0.0


SAMPLING = SamplingParams(temperature=0.2, top_p=0.9, max_tokens=77, stop=["\n\n"], seed=42)


def request(schema: bool = True) -> CompletionRequest:
    return CompletionRequest(
        messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "I love it"}],
        json_schema=Sentiment.model_json_schema() if schema else None,
        schema_name="Sentiment",
        sampling=SAMPLING,
        row_id="r1",
        step_id="sent",
    )


def run(coro):
    return asyncio.run(coro)


async def roundtrip(cfg: EngineConfig, reply, req=None, endpoint_suffix="/v1"):
    async with fake_api(lambda seen: reply) as api:
        eng = create_engine(cfg, api.url + endpoint_suffix)
        try:
            out = await eng.complete(req or request())
        finally:
            await eng.aclose()
        return out, api.seen


def test_factory_picks_backend_and_does_no_io():
    assert isinstance(create_engine(EngineConfig(name="a", backend="openai", model="m", api_key="k")), OpenAIClient)
    assert isinstance(create_engine(EngineConfig(name="b", backend="vllm_api", model="m"), "http://x:1/v1"), VLLMClient)
    assert isinstance(create_engine(EngineConfig(name="c", backend="ollama_api", model="m")), OllamaClient)
    assert isinstance(create_engine(EngineConfig(name="d", backend="local"), "http://x:1/v1"), LocalClient)
    fake = create_engine(EngineConfig(name="e", backend="fake", max_in_flight=3))
    assert isinstance(fake, FakeEngine) and fake.max_in_flight == 3 and fake.name == "e"
    eng = create_engine(EngineConfig(name="b", backend="vllm_api", model="m"), "http://x:1/v1")
    assert eng._pool is None  # created lazily inside the running loop


def test_openai_body_headers_and_parse():
    cfg = EngineConfig(name="gpt", backend="openai", model="gpt-4o-mini", api_key="sk-test-123")
    out, seen = run(roundtrip(cfg, ok(payload("openai_structured")["response"])))
    (s,) = seen
    assert s.path == "/v1/chat/completions"
    assert s.headers["Authorization"] == "Bearer sk-test-123"
    b = s.body
    assert b["model"] == "gpt-4o-mini" and b["messages"][1]["content"] == "I love it"
    rf = b["response_format"]
    assert (
        rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True and rf["json_schema"]["name"] == "Sentiment"
    )
    assert rf["json_schema"]["schema"] == to_strict_schema(Sentiment.model_json_schema())
    assert rf["json_schema"]["schema"]["additionalProperties"] is False
    assert (b["temperature"], b["top_p"], b["max_tokens"], b["stop"], b["seed"]) == (0.2, 0.9, 77, ["\n\n"], 42)
    assert Sentiment.model_validate_json(out.text).label == "positive"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (1117, 46)
    assert out.finish_reason == "stop" and out.model == "gpt-4o-2024-08-06" and out.latency_s > 0


def test_openai_official_endpoint_uses_max_completion_tokens():
    cfg = EngineConfig(name="gpt", backend="openai", model="m", api_key="k")
    eng = create_engine(cfg, "https://api.openai.com/v1")
    body = json.loads(eng.encode(request()))
    assert body["max_completion_tokens"] == 77 and "max_tokens" not in body


def test_openai_env_defaults(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gateway.local:9/v1/")
    eng = create_engine(EngineConfig(name="gpt", backend="openai", model="m"))
    assert eng.url == "http://gateway.local:9/v1/chat/completions"
    assert eng._headers["Authorization"] == "Bearer sk-from-env"


def test_openai_refusal_raises():
    cfg = EngineConfig(name="gpt", backend="openai", model="m", api_key="k", max_retries=0)
    with pytest.raises(RefusalError, match="cannot assist"):
        run(roundtrip(cfg, ok(payload("openai_refusal")["response"])))


def test_openai_drops_nulls_strict_mode_forced_into_optional_fields():
    reply = payload("openai_structured")["response"]
    reply["choices"][0]["message"]["content"] = '{"label":"neutral","score":null}'
    cfg = EngineConfig(name="gpt", backend="openai", model="m", api_key="k")
    out, _ = run(roundtrip(cfg, ok(reply)))
    assert Sentiment.model_validate_json(out.text) == Sentiment(label="neutral", score=0.0)


def test_vllm_structured_outputs_body_and_parse():
    cfg = EngineConfig(name="v", backend="vllm_api", model="Qwen/Qwen2.5-1.5B-Instruct")
    out, seen = run(roundtrip(cfg, ok(payload("vllm_structured")["response"])))
    b = seen[0].body
    assert seen[0].path == "/v1/chat/completions" and "Authorization" not in seen[0].headers
    assert b["structured_outputs"] == {"json": Sentiment.model_json_schema()}
    assert "guided_json" not in b and "response_format" not in b
    assert (b["temperature"], b["top_p"], b["max_tokens"], b["stop"], b["seed"]) == (0.2, 0.9, 77, ["\n\n"], 42)
    assert Sentiment.model_validate_json(out.text).label == "negative"
    assert out.usage.total_tokens == 58


def test_vllm_legacy_guided_json_for_old_servers():
    cfg = EngineConfig(name="v", backend="vllm_api", model="m", server_version="0.9.2")
    body = json.loads(create_engine(cfg, "http://h:1/v1").encode(request()))
    assert body["guided_json"] == Sentiment.model_json_schema() and "structured_outputs" not in body


def test_vllm_served_model_name_flag_is_the_request_model():
    cfg = EngineConfig(name="v", backend="vllm_api", model="org/big", extra_serve_flags=["--served-model-name", "big"])
    assert json.loads(create_engine(cfg, "http://h:1/v1").encode(request()))["model"] == "big"


@pytest.mark.parametrize("fixture", ["vllm_reasoning", "vllm_reasoning_content_legacy"])
def test_vllm_reasoning_fields(fixture):
    cfg = EngineConfig(name="v", backend="vllm_api", model="m")
    out, _ = run(roundtrip(cfg, ok(payload(fixture)["response"])))
    assert out.reasoning and "{" in out.text and "<think>" not in out.text


def test_ollama_body_and_parse():
    cfg = EngineConfig(name="o", backend="ollama_api", model="llama3.2")
    out, seen = run(roundtrip(cfg, ok(payload("ollama_structured")["response"]), endpoint_suffix=""))
    s = seen[0]
    assert s.path == "/api/chat"
    b = s.body
    assert b["stream"] is False and b["format"] == Sentiment.model_json_schema() and b["model"] == "llama3.2"
    assert b["options"] == {"temperature": 0.2, "top_p": 0.9, "num_predict": 77, "seed": 42, "stop": ["\n\n"]}
    assert Sentiment.model_validate_json(out.text).label == "positive"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (26, 15)
    assert out.finish_reason == "stop"


def test_ollama_thinking_and_v1_suffix_tolerated():
    cfg = EngineConfig(name="o", backend="ollama_api", model="qwen3", enable_reasoning=True)
    out, seen = run(roundtrip(cfg, ok(payload("ollama_thinking")["response"]), endpoint_suffix="/v1"))
    assert seen[0].path == "/api/chat" and seen[0].body["think"] is True
    assert out.reasoning == "The capital of France is Paris." and json.loads(out.text) == {"answer": "Paris"}


def test_ollama_default_endpoint():
    eng = create_engine(EngineConfig(name="o", backend="ollama_api", model="m"))
    assert eng.url == "http://localhost:11434/api/chat"


@pytest.mark.parametrize("fixture", ["local_structured", "local_length"])
def test_local_recorded_payloads(fixture):
    rec = payload(fixture)
    cfg = EngineConfig(name="local", backend="local", model="smollm2")
    req = CompletionRequest(messages=rec["request"]["messages"], sampling=SamplingParams(max_tokens=8))
    out, seen = run(roundtrip(cfg, ok(rec["response"]), req=req))
    assert out.text == rec["response"]["choices"][0]["message"]["content"]
    assert out.usage.prompt_tokens == rec["response"]["usage"]["prompt_tokens"]
    assert out.finish_reason == rec["response"]["choices"][0]["finish_reason"]
    assert seen[0].body["model"] == "smollm2"


def test_local_body_always_has_max_tokens_and_json_schema():
    cfg = EngineConfig(name="local", backend="local")
    eng = create_engine(cfg, "http://h:1/v1")
    body = json.loads(eng.encode(CompletionRequest(messages=[], json_schema={"type": "object"})))
    assert body["max_tokens"] == 512
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": {"type": "object"}},
    }


def test_think_tags_split_off():
    assert split_think('<think>hmm\n</think>\n{"a": 1}') == ('{"a": 1}', "hmm")
    assert split_think("only reasoning</think>{}") == ("{}", "only reasoning")
    assert split_think('{"a": 1}') == ('{"a": 1}', None)
    reply = payload("vllm_structured")["response"]
    reply["choices"][0]["message"]["content"] = '<think>let me see</think>{"label": "x", "score": 1}'
    out, _ = run(roundtrip(EngineConfig(name="v", backend="vllm_api", model="m"), ok(reply)))
    assert out.reasoning == "let me see" and Sentiment.model_validate_json(out.text).label == "x"


def test_empty_content_is_an_error():
    reply = payload("vllm_structured")["response"]
    reply["choices"][0]["message"]["content"] = ""
    cfg = EngineConfig(name="v", backend="vllm_api", model="m", max_retries=0)
    with pytest.raises(EmptyCompletionError):
        run(roundtrip(cfg, ok(reply)))


def test_body_tail_is_cached_per_schema_and_sampling():
    eng = create_engine(EngineConfig(name="v", backend="vllm_api", model="m"), "http://h:1/v1")
    req = request()
    a = eng.encode(req)
    req2 = CompletionRequest(
        messages=[{"role": "user", "content": "other"}],
        json_schema=req.json_schema,
        schema_name=req.schema_name,
        sampling=req.sampling,
    )
    b = eng.encode(req2)
    assert len(eng._tails) == 1
    assert json.loads(b)["messages"][0]["content"] == "other" and json.loads(a)["structured_outputs"]


def test_engine_usable_across_event_loops():
    """The executor makes a new loop per run; one engine object must work in each."""
    cfg = EngineConfig(name="v", backend="vllm_api", model="m")
    reply = ok(payload("vllm_structured")["response"])

    async def one(eng):
        return (await eng.complete(request())).text

    async def serve_and(fn):
        async with fake_api(lambda s: reply) as api:
            return await fn(api)

    holder = {}

    async def first(api):
        holder["eng"] = create_engine(cfg, api.url + "/v1")
        holder["url"] = api.url
        return await one(holder["eng"])

    assert run(serve_and(first))

    async def second(api):
        eng = holder["eng"]
        eng.url = api.url + "/v1/chat/completions"
        out = await one(eng)
        await eng.aclose()
        return out

    assert run(serve_and(second))
