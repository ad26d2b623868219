"""03 - Translate to FR/ES/DE in parallel (joined), then summarise."""

from pydantic import BaseModel, Field

from chainette import Branch, Chain, Step, register_engine
from chainette.core.step import SamplingParams


class Sentence(BaseModel):
    text: str = Field(..., description="Original English sentence")


class Translation(BaseModel):
    text: str


class Summary(BaseModel):
    summary: str


# ported: engine registration points at the fake backend (was: OpenAI gpt-4.1-nano / gpt-4.1-mini)
register_engine("openai_nano", backend="fake")
register_engine("openai_mini", backend="fake")


def _translate(code: str, language: str) -> Step:
    return Step(
        id=code,
        name=f"Translate to {code.upper()}",
        input_model=Sentence,
        output_model=Translation,
        engine_name="openai_nano",
        sampling=SamplingParams(temperature=0.3),
        system_prompt=f"Translate the sentence to {language}.",
        user_prompt="{{chain_input.text}}",
    )


fr_branch = Branch(name="fr_branch", steps=[_translate("fr", "French")]).join("fr")
es_branch = Branch(name="es_branch", steps=[_translate("es", "Spanish")]).join("es")
de_branch = Branch(name="de_branch", steps=[_translate("de", "German")]).join("de")

sum_step = Step(
    id="summary",
    name="Summarise",
    input_model=Sentence,  # not used but required
    output_model=Summary,
    engine_name="openai_mini",
    sampling=SamplingParams(temperature=0.0),
    system_prompt="Provide a concise English summary of the sentence using the translations as reference.",
    user_prompt="French: {{fr.text}}\nSpanish: {{es.text}}\nGerman: {{de.text}}",
)

translate_chain = Chain(name="Translate & Summarise Demo", steps=[[fr_branch, es_branch, de_branch], sum_step])
