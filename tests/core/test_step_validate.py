import pytest

from chainette import Branch, Chain, FakeEngine, Step, apply
from chainette.errors import ChainValidationError
from tests.core.models import Answer, Question, Summary, Translation

ENGINES = {"fake": FakeEngine()}


def test_system_prompt_gets_schema_instruction_unless_overridden():
    s = Step("s", input_model=Question, output_model=Answer, engine_name="fake", system_prompt="Be brief.")
    assert s.system_prompt.startswith("Be brief.")
    assert "- confidence: number" in s.system_prompt and "JSON object" in s.system_prompt
    s2 = Step("s2", output_model=Answer, output_format_instruction="Reply as JSON.")
    assert s2.system_prompt == "Reply as JSON."
    s3 = Step("s3", output_model=Answer, output_format_instruction="")
    assert s3.system_prompt == ""


def test_render_sees_fields_history_aliases_and_row_id():
    s = Step(
        "s",
        output_model=Answer,
        system_prompt="",
        output_format_instruction="",
        user_prompt="{{text}}|{{chain_input.text}}|{{prev.answer}}|{{al.translated}}|{{row_id}}",
    )
    ctx = {
        "text": "hi",
        "chain_input": Question(text="orig"),
        "prev": Answer(answer="a", confidence=1),
        "al": Translation(translated="t"),
        "row_id": "7",
    }
    msgs = s.render_messages(ctx)
    assert msgs == [{"role": "user", "content": "hi|orig|a|t|7"}]


def test_validation_reports_every_problem_at_once():
    first = Step(
        "first", input_model=Question, output_model=Answer, engine_name="fake", user_prompt="{{ text }} {{ nope }}"
    )
    dup = Step("first", input_model=Answer, output_model=Answer, engine_name="fake", user_prompt="{{answer}}")
    bad_engine = Step(
        "third", input_model=Answer, output_model=Answer, engine_name="ghost", user_prompt="{{ first.missing_field }}"
    )
    wrong_io = Step(
        "fourth", input_model=Translation, output_model=Summary, engine_name="fake", user_prompt="{{translated}}"
    )  # no earlier value is a Translation: an error
    chain = Chain("bad", steps=[first, dup, bad_engine, wrong_io])
    with pytest.raises(ChainValidationError) as exc:
        chain.validate(engines=ENGINES)
    text = str(exc.value)
    assert "first: user_prompt uses '{{ nope }}'" in text
    assert "duplicate id 'first'" in text
    assert "unknown engine 'ghost'" in text
    assert "'first' (Answer) has no field 'missing_field'" in text
    assert "fourth: expects input Translation but receives Answer" in text
    assert len(exc.value.problems) == 5


def test_join_alias_visible_downstream_but_branch_outputs_are_not():
    a = Step("a", input_model=Question, output_model=Answer, engine_name="fake", user_prompt="{{text}}")
    fr = Branch(
        "fr", [Step("tr", input_model=Answer, output_model=Translation, engine_name="fake", user_prompt="{{answer}}")]
    ).join("fr")
    plain = Branch(
        "plain",
        [Step("pl", input_model=Answer, output_model=Translation, engine_name="fake", user_prompt="{{answer}}")],
    )
    ok = Step(
        "ok", input_model=Answer, output_model=Summary, engine_name="fake", user_prompt="{{fr.translated}} {{a.answer}}"
    )
    Chain("good", steps=[a, [fr, plain], ok]).validate(engines=ENGINES)
    bad = Step("bad", input_model=Answer, output_model=Summary, engine_name="fake", user_prompt="{{pl.translated}}")
    with pytest.raises(ChainValidationError, match="'pl' is not defined here"):
        Chain("bad", steps=[a, [fr, plain], bad]).validate(engines=ENGINES)


def test_template_syntax_error_is_a_problem():
    s = Step("s", input_model=Question, output_model=Answer, engine_name="fake", user_prompt="{{ text ")
    with pytest.raises(ChainValidationError, match="template syntax error"):
        Chain("c", steps=[s]).validate(engines=ENGINES)


def test_apply_without_output_model_does_not_block_validation():
    a = Step("a", input_model=Question, output_model=Answer, engine_name="fake", user_prompt="{{text}}")
    f = apply(lambda x: [x], id="passthrough")
    b = Step("b", output_model=Summary, engine_name="fake", user_prompt="{{ anything }}")
    Chain("c", steps=[a, f, b]).validate(engines=ENGINES)


def test_alias_equal_to_branch_name_is_allowed_and_reserved_names_are_not():
    a = Step("a", input_model=Question, output_model=Answer, engine_name="fake", user_prompt="{{text}}")
    fr = Branch(
        "fr", [Step("tr", input_model=Answer, output_model=Translation, engine_name="fake", user_prompt="{{answer}}")]
    ).join("fr")
    Chain("c", steps=[a, [fr]]).validate(engines=ENGINES)
    bad = Step("row_id", input_model=Question, output_model=Answer, engine_name="fake", user_prompt="{{text}}")
    with pytest.raises(ChainValidationError, match="reserved"):
        Chain("c", steps=[bad]).validate(engines=ENGINES)
