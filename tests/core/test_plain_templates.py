"""Plain templates (text and ``{{ name }}`` / ``{{ name.attr }}``) are read without jinja2.

``plain_parts`` must give exactly what jinja2's parser gives for every template it accepts
(the oracle: the same functions with the plain reader switched off), and a run whose
templates are all plain never imports jinja2 (~1.7 MB and ~15 ms of start-up).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainette.core import templates
from chainette.core.templates import compile_fast, plain_parts, unsafe_uses, variables

FRAGMENTS = [
    "{{ name }}",
    "{{x}}",
    "{{ a.b }}",
    "{{a.b.c}}",
    "{{\n text \n}}",
    "{{ true }}",
    "{{ None }}",
    "{{ if }}",
    "{{ loop }}",
    "{{ self }}",
    "{{ x.if }}",
    "{{- x }}",
    "{{ x -}}",
    "{{ x|upper }}",
    "{{ x . y }}",
    "{{ 1 }}",
    "{{ x['a'] }}",
    "{{ x._y }}",
    "{{ _x }}",
    "{{ x.gi_frame }}",
    "{{ x.mro }}",
    "{% if x %}",
    "{% endif %}",
    "{# note #}",
    "{% raw %}{{ x }}{% endraw %}",
    "{",
    "}",
    "}}",
    "{{",
    "{%",
    "{#",
    "\r\n",
    "\r",
    "\n",
    "Question: ",
    "é ✓",
]
SOURCES = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(alphabet="ab {}%#-._\r\n", max_size=4)), max_size=8
).map("".join)


def jinja_only(source: str):
    """What the template functions give with the plain reader switched off (jinja2's parse)."""
    with mock.patch.object(templates, "plain_parts", lambda s: None):
        fast = compile_fast.__wrapped__(source)  # type: ignore[attr-defined]  # not the cached result
        return fast, variables(source), unsafe_uses(source)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=SOURCES)
def test_a_plain_template_reads_exactly_as_jinja2_parses_it(source):
    plain = plain_parts(source)
    if plain is None:
        return  # jinja2 reads it, as before
    fast, names, unsafe = jinja_only(source)  # raises if jinja2 finds a syntax error
    assert fast is not None and fast.parts == list(plain), source
    assert variables(source) == names, source
    assert unsafe_uses(source) == unsafe == [], source


@pytest.mark.parametrize(
    ("source", "parts"),
    [
        ("Question: {{ text }}", ("Question: ", ("text", ()))),
        ("{{a.b.c}}!\r\nnext", (("a", ("b", "c")), "!\nnext")),
        ("no placeholder }} at all {", ("no placeholder }} at all {",)),
        ("", ()),
    ],
)
def test_plain_templates_are_read_without_jinja2(source, parts):
    assert plain_parts(source) == parts
    fast, names, unsafe = jinja_only(source)
    assert fast is not None and fast.parts == list(parts)


@pytest.mark.parametrize(
    "source",
    ["{{ x|upper }}", "{% if x %}y{% endif %}", "{{- x }}", "{{ true }}", "{{ x._y }}", "{{ loop }}", "{{{ x }}"],
)
def test_anything_else_is_left_to_jinja2(source):
    assert plain_parts(source) is None


RUN = textwrap.dedent(
    """
    import json, sys, tempfile
    from pydantic import BaseModel
    from chainette import Chain, FakeEngine, Step

    class Q(BaseModel):
        text: str
        extra: dict = {}

    class A(BaseModel):
        answer: str

    prompt = sys.argv[1]
    step = Step("s", input_model=Q, output_model=A, engine_name="e", system_prompt="Answer.", user_prompt=prompt)
    out = tempfile.mkdtemp()
    result = Chain("c", steps=[step]).run(
        [{"text": "q1"}, {"text": "q2"}], output_dir=out, engines={"e": FakeEngine(name="e")}, cache=False
    )
    errors = open(out + "/errors/000.jsonl").read() if result.failed_rows or result.error_count else ""
    print(json.dumps({"jinja2": "jinja2" in sys.modules, "done": result.step_stats["s"].done, "errors": errors}))
    """
)


def _run(prompt: str) -> dict:
    import json

    out = subprocess.run([sys.executable, "-c", RUN, prompt], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_run_of_plain_templates_never_imports_jinja2():
    assert _run("Q: {{ text }} ({{ row_id }})") == {"jinja2": False, "done": 2, "errors": ""}


def test_a_template_that_needs_jinja2_imports_it_and_runs():
    assert _run("Q: {{ text|upper }}") == {"jinja2": True, "done": 2, "errors": ""}


def test_an_undefined_name_in_a_plain_template_is_still_jinja2s_error_for_the_row():
    got = _run("Q: {{ extra.missing }}")  # a key validation cannot know about
    assert (
        got["done"] == 0
        and "template variable undefined" in got["errors"]
        and "no attribute 'missing'" in got["errors"]
    )
