"""Translate into French and Spanish in parallel branches, join them back, then summarise.

            ┌─ fr: translate_fr ─┐ join as `french`
  input ────┤                    ├──► summary (sees {{ french.text }} and {{ spanish.text }})
            └─ es: translate_es ─┘ join as `spanish`

Both branches run concurrently on each row; the joins are matched by row id.
"""

from pydantic import BaseModel, Field

from chainette import Branch, Chain, SamplingParams, Step


class Text(BaseModel):
    text: str


class Translation(BaseModel):
    text: str = Field(max_length=80)


class Summary(BaseModel):
    summary: str = Field(max_length=60)


def translator(step_id: str, language: str) -> Step:
    return Step(
        step_id,
        input_model=Text,
        output_model=Translation,
        sampling=SamplingParams(temperature=0, max_tokens=104),
        system_prompt=f"Translate the user's text into {language}.",
        user_prompt="{{ text }}",
    )


translate_fr = translator("translate_fr", "French")
translate_es = translator("translate_es", "Spanish")

summary = Step(
    "summary",
    output_model=Summary,
    sampling=SamplingParams(temperature=0, max_tokens=84),
    system_prompt="Summarise the English text in a few words.",
    user_prompt="English: {{ chain_input.text }}\nFrench: {{ french.text }}\nSpanish: {{ spanish.text }}",
)

french = Branch("fr", [translate_fr]).join("french")
spanish = Branch("es", [translate_es]).join("spanish")

chain = Chain(name="Translate and summarise", steps=[[french, spanish], summary])
# The same chain with the DSL:  chain = Chain("Translate and summarise", steps=(french | spanish) >> summary)
