"""Request bodies against the providers' published request types, sampling pass-through,
strict-mode fallback, Ollama ``think`` and endpoint normalisation, at the transport.

Published types: ``openai.types.chat.completion_create_params.CompletionCreateParamsNonStreaming``
and the ``ollama`` package's ``ChatRequest`` / ``Options``, unknown keys forbidden at every
depth (``_wire_types.conform``), so a renamed or mistyped body field fails here.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import BaseModel, ValidationError

from chainette.core.chain import Chain
from chainette.core.step import Step
from chainette.engine.backends.checks import schema_warnings, step_wire_problems, wire_problems, wire_warnings
from chainette.engine.backends.strict_rules import strict_mode_violations
from chainette.engine.factory import create_engine
from chainette.engine.protocol import CompletionRequest, SamplingParams
from chainette.engine.registry import EngineConfig
from chainette.errors import ConfigError

from ._support import fake_api, ok, payload
from ._wire_types import conform
from .schema_corpus import Counts, OptionalWithDefaults, Pair, Pets

openai_params = pytest.importorskip("openai.types.chat.completion_create_params")
OPENAI_REQUEST = openai_params.CompletionCreateParamsNonStreaming

ALL_SAMPLING = SamplingParams(
    temperature=0.3,
    top_p=0.9,
    max_tokens=64,
    stop=["\n\n"],
    seed=7,
    top_k=40,
    min_p=0.05,
    repetition_penalty=1.1,
    frequency_penalty=0.2,
    presence_penalty=-0.1,
    logit_bias={"50256": -100},
)
OPENAI_SAMPLING = ALL_SAMPLING.model_copy(update={"top_k": None, "min_p": None, "repetition_penalty": None})
VLLM_EXTRAS = {
    "structured_outputs",
    "guided_json",
    "top_k",
    "min_p",
    "repetition_penalty",
}  # vLLM's documented extra body fields
LLAMACPP_EXTRAS = {"top_k", "min_p", "repeat_penalty"}  # llama.cpp server's own sampling fields


class Sentiment(BaseModel):
    label: str
    score: float = 0.0


def req(model: type[BaseModel] = Sentiment, sampling: SamplingParams = SamplingParams(), **kw) -> CompletionRequest:
    return CompletionRequest(
        messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
        json_schema=model.model_json_schema(),
        schema_name=model.__name__,
        sampling=sampling,
        **kw,
    )


def body_of(cfg: EngineConfig, request: CompletionRequest, endpoint: str | None = "http://gw.local:9/v1") -> dict:
    return json.loads(create_engine(cfg, endpoint).encode(request))


def openai_cfg(**kw) -> EngineConfig:
    return EngineConfig(name="gpt", backend="openai", model="gpt-4.1-mini", api_key="sk-t", **kw)


def run(coro):
    return asyncio.run(coro)


def chat_reply(content: str) -> dict:
    reply = payload("openai_structured")["response"]
    reply["choices"][0]["message"]["content"] = content
    return reply


# -- published request types -------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["https://api.openai.com/v1", "http://gateway.local:4000/v1"])
@pytest.mark.parametrize("model", [Sentiment, Counts, Pets, OptionalWithDefaults])
def test_openai_bodies_fit_the_published_request_type(endpoint, model):
    cfg = openai_cfg(reasoning_effort="low")
    sampling = OPENAI_SAMPLING.model_copy(update={"extra": {"user": "row-7", "service_tier": "flex"}})
    body = body_of(cfg, req(model, sampling), endpoint)
    assert conform(body, OPENAI_REQUEST) == []
    assert body["reasoning_effort"] == "low" and body["user"] == "row-7"


def test_the_type_check_catches_renamed_or_mistyped_fields():
    body = body_of(openai_cfg(), req(Sentiment, OPENAI_SAMPLING))
    assert conform({**body, "max_token": 5}, OPENAI_REQUEST) == [
        "body.max_token: not a field of CompletionCreateParamsNonStreaming"
    ]
    assert conform({**body, "seed": "7"}, OPENAI_REQUEST)
    bad = json.loads(json.dumps(body))
    bad["response_format"]["json_schema"]["strict_mode"] = True
    assert conform(bad, OPENAI_REQUEST)


@pytest.mark.parametrize("reasoning", [{}, {"enable_reasoning": True}, {"reasoning_effort": "high"}])
def test_ollama_bodies_fit_the_published_request_types(reasoning):
    ollama_types = pytest.importorskip("ollama._types")
    cfg = EngineConfig(name="o", backend="ollama_api", model="qwen3", **reasoning)
    sampling = ALL_SAMPLING.model_copy(
        update={"logit_bias": None, "extra": {"keep_alive": "5m", "options": {"num_ctx": 8192}}}
    )
    body = body_of(cfg, req(Sentiment, sampling), "http://h:11434")
    assert conform(body, ollama_types.ChatRequest) == []
    # options is typed Mapping[str, Any] | Options; check it against Options too. min_p is an
    # option of the server (ollama api/types.go Options.MinP, docs/api.md) the Python
    # client's Options model does not list yet.
    options = {k: v for k, v in body["options"].items() if k != "min_p"}
    assert conform(options, ollama_types.Options) == []
    assert body["options"]["min_p"] == 0.05


@pytest.mark.parametrize(("backend", "extras"), [("vllm_api", VLLM_EXTRAS), ("local", LLAMACPP_EXTRAS)])
def test_openai_compatible_servers_fit_openai_types_plus_their_documented_extras(backend, extras):
    body = body_of(EngineConfig(name="v", backend=backend, model="m"), req(Sentiment, ALL_SAMPLING))
    sent_extras = {k for k in body if k in extras}
    assert conform({k: v for k, v in body.items() if k not in extras}, OPENAI_REQUEST) == []
    assert sent_extras >= {"top_k", "min_p"}


# -- sampling pass-through ------------------------------------------------------------------
def test_sampling_mapping_per_backend():
    vllm = body_of(EngineConfig(name="v", backend="vllm_api", model="m"), req(Sentiment, ALL_SAMPLING))
    assert {
        k: vllm[k]
        for k in ("top_k", "min_p", "repetition_penalty", "frequency_penalty", "presence_penalty", "logit_bias")
    } == {
        "top_k": 40,
        "min_p": 0.05,
        "repetition_penalty": 1.1,
        "frequency_penalty": 0.2,
        "presence_penalty": -0.1,
        "logit_bias": {"50256": -100},
    }
    local = body_of(EngineConfig(name="l", backend="local", model="m"), req(Sentiment, ALL_SAMPLING))
    assert local["repeat_penalty"] == 1.1 and "repetition_penalty" not in local and local["top_k"] == 40
    ollama = body_of(
        EngineConfig(name="o", backend="ollama_api", model="m"),
        req(Sentiment, ALL_SAMPLING.model_copy(update={"logit_bias": None})),
        "http://h:11434",
    )
    assert ollama["options"] == {
        "temperature": 0.3,
        "top_p": 0.9,
        "num_predict": 64,
        "stop": ["\n\n"],
        "seed": 7,
        "top_k": 40,
        "min_p": 0.05,
        "repeat_penalty": 1.1,
        "frequency_penalty": 0.2,
        "presence_penalty": -0.1,
    }
    gpt = body_of(openai_cfg(), req(Sentiment, OPENAI_SAMPLING))
    assert (gpt["frequency_penalty"], gpt["presence_penalty"], gpt["logit_bias"], gpt["max_tokens"]) == (
        0.2,
        -0.1,
        {"50256": -100},
        64,
    )


@pytest.mark.parametrize(
    ("backend", "fields"),
    [
        ("openai", {"top_k", "min_p", "repetition_penalty"}),
        ("ollama_api", {"logit_bias"}),
        ("vllm_api", set()),
        ("local", set()),
    ],
)
def test_a_field_the_backend_cannot_honour_is_a_validation_error(backend, fields):
    cfg = EngineConfig(name="e", backend=backend, model="m", endpoint="http://h:1")
    step = Step("s", output_model=Sentiment, engine_name="e", sampling=ALL_SAMPLING)
    problems = step_wire_problems(step, cfg)
    assert {f for f in ALL_SAMPLING.set_fields() if any(f"'{f}'" in p for p in problems)} == fields
    assert all(f"engine 'e' (backend {backend})" in p for p in problems)
    if fields:
        with pytest.raises(ConfigError, match="cannot honour"):
            create_engine(cfg).encode(req(Sentiment, ALL_SAMPLING))


def test_openai_problem_says_how_to_send_it_anyway_and_no_request_is_made():
    cfg = openai_cfg()
    chain = Chain("c", [Step("s", output_model=Sentiment, engine_name="gpt", sampling={"top_k": 5})])
    (problem,) = wire_problems(chain, {"gpt": cfg})
    assert problem.where == "s" and "'top_k'" in problem.message and "extra={'top_k': ...}" in problem.message
    body = body_of(cfg, req(Sentiment, SamplingParams(extra={"top_k": 5})))
    assert body["top_k"] == 5  # sent verbatim when the user says the endpoint accepts it


def test_unknown_sampling_fields_are_still_errors():
    with pytest.raises(ValidationError, match="top_kk"):
        SamplingParams(top_kk=3)
    with pytest.raises(ValidationError, match="Chainette sends those itself"):
        SamplingParams(extra={"model": "x"})
    with pytest.raises(ValidationError, match="token ids"):
        SamplingParams(logit_bias={"hello": 1})
    assert SamplingParams(logit_bias={50256: -100}).logit_bias == {"50256": -100}


# -- OpenAI: strict or not, at the transport -------------------------------------------------
def test_openai_non_strict_fallback_for_a_dict_field_one_request_per_row():
    cfg = openai_cfg()
    reply = '{"word": "a", "counts": {"x": 1, "y": 2}}'

    async def go():
        async with fake_api(lambda seen: ok(chat_reply(reply))) as api:
            eng = create_engine(cfg, api.url + "/v1")
            try:
                outs = await asyncio.gather(*(eng.complete(req(Counts)) for _ in range(5)))
            finally:
                await eng.aclose()
            return outs, api.seen

    outs, seen = run(go())
    assert len(seen) == 5
    rf = seen[0].body["response_format"]["json_schema"]
    assert rf["strict"] is False and rf["schema"] == Counts.model_json_schema()
    assert all(Counts.model_validate_json(o.text).counts == {"x": 1, "y": 2} for o in outs)
    (warning,) = schema_warnings(Step("s", output_model=Counts, engine_name="gpt"), cfg)
    assert "Counts is sent to engine 'gpt' as a non-strict JSON schema" in warning and "Counts.counts" in warning


def test_openai_strict_body_restores_defaults_inside_optional_models():
    cfg = openai_cfg()
    reply = '{"settings": {"retries": null, "label": "y", "weights": null}, "backup": {"retries": 2, "label": null, "weights": [1.0]}}'

    async def go():
        async with fake_api(lambda seen: ok(chat_reply(reply))) as api:
            eng = create_engine(cfg, api.url + "/v1")
            try:
                return await eng.complete(req(OptionalWithDefaults)), api.seen
            finally:
                await eng.aclose()

    out, seen = run(go())
    assert len(seen) == 1
    rf = seen[0].body["response_format"]["json_schema"]
    assert rf["strict"] is True and strict_mode_violations(rf["schema"]) == []
    value = OptionalWithDefaults.model_validate_json(out.text)
    assert value.settings.retries == 3 and value.settings.weights == [0.5] and value.backup.label == "x"


def test_openai_union_and_tuple_never_go_out_as_oneof_or_prefixitems():
    for model in (Pets, Pair):
        rf = body_of(openai_cfg(), req(model))["response_format"]["json_schema"]
        text = json.dumps(rf["schema"])
        if rf["strict"]:
            assert '"oneOf"' not in text and '"prefixItems"' not in text and strict_mode_violations(rf["schema"]) == []
        else:
            assert rf["schema"] == model.model_json_schema()
    assert body_of(openai_cfg(), req(Pets))["response_format"]["json_schema"]["strict"] is True
    assert body_of(openai_cfg(), req(Pair))["response_format"]["json_schema"]["strict"] is False


def test_strict_schema_always_refuses_and_never_sends_non_strict():
    always = openai_cfg(strict_schema="always")
    step = Step("s", output_model=Counts, engine_name="gpt")
    (problem,) = step_wire_problems(step, always)
    assert "strict_schema: always" in problem and "Counts.counts" in problem
    assert schema_warnings(step, always) == []
    with pytest.raises(ConfigError, match="Counts.counts"):
        body_of(always, req(Counts))
    assert body_of(always, req(Sentiment))["response_format"]["json_schema"]["strict"] is True
    never = openai_cfg(strict_schema="never")
    rf = body_of(never, req(Sentiment))["response_format"]["json_schema"]
    assert rf["strict"] is False and rf["schema"] == Sentiment.model_json_schema()


def test_chain_level_warnings_name_step_and_model():
    chain = Chain(
        "c", [Step("a", output_model=Sentiment, engine_name="gpt"), Step("b", output_model=Counts, engine_name="gpt")]
    )
    warnings = wire_warnings(chain, {"gpt": openai_cfg()})
    assert [w.where for w in warnings] == ["b"] and "Counts.counts" in warnings[0].message
    assert wire_warnings(chain, {"gpt": EngineConfig(name="gpt", backend="vllm_api", model="m")}) == []


# -- max tokens key, reasoning effort ----------------------------------------------------------
@pytest.mark.parametrize(
    ("endpoint", "field", "key"),
    [
        ("https://api.openai.com/v1", None, "max_completion_tokens"),
        ("https://api.openai.com", None, "max_completion_tokens"),
        ("http://gateway.local/v1", None, "max_tokens"),
        ("https://res.openai.azure.com/openai/v1", "max_completion_tokens", "max_completion_tokens"),
        ("https://api.openai.com/v1", "max_tokens", "max_tokens"),
    ],
)
def test_max_tokens_key_per_engine(endpoint, field, key):
    body = body_of(openai_cfg(max_tokens_field=field), req(Sentiment, SamplingParams(max_tokens=9)), endpoint)
    assert body[key] == 9 and ({"max_tokens", "max_completion_tokens"} - {key}).isdisjoint(body)


def test_reasoning_effort_per_backend():
    assert body_of(openai_cfg(reasoning_effort="minimal"), req())["reasoning_effort"] == "minimal"
    assert "reasoning_effort" not in body_of(openai_cfg(), req())
    vllm = EngineConfig(name="v", backend="vllm_api", model="m", reasoning_effort="high")
    assert body_of(vllm, req())["reasoning_effort"] == "high"
    step = Step("s", output_model=Sentiment, engine_name="v")
    assert step_wire_problems(step, vllm) == []
    (p,) = step_wire_problems(step, EngineConfig(name="v", backend="vllm_api", model="m", reasoning_effort="minimal"))
    assert "reasoning_effort 'minimal'" in p and "high, low, medium" in p
    (p,) = step_wire_problems(step, EngineConfig(name="l", backend="local", reasoning_effort="low"))
    assert "reasoning_effort 'low'" in p


# -- Ollama: think and endpoints ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "think"),
    [
        ({}, False),
        ({"enable_reasoning": True}, True),
        ({"reasoning_effort": "medium"}, "medium"),
        ({"enable_reasoning": True, "reasoning_effort": "none"}, False),
    ],
)
def test_ollama_think_is_always_explicit(fields, think):
    body = body_of(EngineConfig(name="o", backend="ollama_api", model="qwen3", **fields), req(), "http://h:11434")
    assert body["think"] == think


def test_ollama_before_0_12_5_refusing_think_false_gets_it_dropped_once():
    cfg = EngineConfig(name="o", backend="ollama_api", model="llama3.2")
    good = payload("ollama_structured")["response"]

    def handler(seen):
        if "think" in seen.body:
            return 400, {"error": '"llama3.2" does not support thinking'}, {}
        return ok(good)

    async def go():
        async with fake_api(handler) as api:
            eng = create_engine(cfg, api.url)
            try:
                first = await eng.complete(req())
                rest = await asyncio.gather(*(eng.complete(req()) for _ in range(4)))
            finally:
                await eng.aclose()
            return [first, *rest], api.seen

    outs, seen = run(go())
    assert len(seen) == 6  # one refused request, then one per row
    assert [("think" in s.body) for s in seen] == [True, False, False, False, False, False]
    assert all(Sentiment.model_validate_json(o.text) for o in outs)


def test_ollama_other_400s_are_not_retried():
    cfg = EngineConfig(name="o", backend="ollama_api", model="m", max_retries=3)

    async def go():
        async with fake_api(lambda seen: (400, {"error": "invalid format"}, {})) as api:
            eng = create_engine(cfg, api.url)
            try:
                with pytest.raises(Exception, match="invalid format"):
                    await eng.complete(req())
            finally:
                await eng.aclose()
            return api.seen

    assert len(run(go())) == 1


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/", "/api", "/api/", "/api/chat"])
@pytest.mark.parametrize("path", ["config", "argument"])
def test_ollama_endpoint_normalised_on_every_construction_path(suffix, path):
    async def go():
        async with fake_api(lambda seen: ok(payload("ollama_structured")["response"])) as api:
            if path == "config":
                eng = create_engine(EngineConfig(name="o", backend="ollama_api", model="m", endpoint=api.url + suffix))
            else:
                eng = create_engine(EngineConfig(name="o", backend="ollama_api", model="m"), api.url + suffix)
            try:
                await eng.complete(req())
            finally:
                await eng.aclose()
            return api.seen

    (seen,) = run(go())
    assert seen.path == "/api/chat"


@pytest.mark.parametrize(
    ("backend", "given", "url"),
    [
        ("vllm_api", "http://h:8000", "http://h:8000/v1/chat/completions"),
        ("vllm_api", "http://h:8000/v1/", "http://h:8000/v1/chat/completions"),
        ("vllm_api", "http://h:8000/v1/chat/completions", "http://h:8000/v1/chat/completions"),
        ("local", "http://127.0.0.1:5000/", "http://127.0.0.1:5000/v1/chat/completions"),
        ("openai", "https://api.openai.com", "https://api.openai.com/v1/chat/completions"),
        ("openai", "http://proxy.local/openai/v1/", "http://proxy.local/openai/v1/chat/completions"),
        ("openai", "http://litellm.local:4000", "http://litellm.local:4000/chat/completions"),
    ],
)
def test_openai_style_endpoints_normalised(backend, given, url):
    by_arg = create_engine(EngineConfig(name="e", backend=backend, model="m"), given)
    by_cfg = create_engine(EngineConfig(name="e", backend=backend, model="m", endpoint=given))
    assert by_arg.url == by_cfg.url == url
