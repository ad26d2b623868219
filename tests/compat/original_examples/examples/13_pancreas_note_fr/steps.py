"""Pipeline steps of the pancreas note generator (prompts shortened)."""

from models import ClassifiedCase, ClinicalCase, ClinicalNote, ExtractedInfo, SpanInfo

from chainette import SamplingParams, Step

classify_step = Step(
    id="classify",
    name="Pancreas Cancer Classifier",
    input_model=ClinicalCase,
    output_model=ClassifiedCase,
    engine_name="openai_mini",
    sampling=SamplingParams(temperature=0.0),
    system_prompt="Classify the French clinical case as 'pancreas', 'lymphoma' or 'other'.",
    user_prompt="{{chain_input.text}}",
)

reformulate_step = Step(
    id="note",
    name="Reformulate into French Hospital Note",
    input_model=ClassifiedCase,
    output_model=ClinicalNote,
    engine_name="gpt-4.1",
    sampling=SamplingParams(temperature=0.3),
    system_prompt="Reformulate the text into a concise, formal French clinical note. Do NOT invent information.",
    user_prompt="{{chain_input.text}}",
)

extract_step = Step(
    id="extract",
    name="Extract Structured Info",
    input_model=ClinicalNote,
    output_model=ExtractedInfo,
    engine_name="o4-mini",
    sampling=SamplingParams(temperature=1.0),
    system_prompt="Remplissez un objet JSON avec les champs prevus; null si absent.",
    user_prompt="{{note.note}}",
)

span_step = Step(
    id="spans",
    name="Locate Info Spans",
    input_model=ClinicalNote,
    output_model=SpanInfo,
    engine_name="openai_mini",
    sampling=SamplingParams(temperature=0.0),
    system_prompt="Pour chaque variable, renvoyez l'extrait exact du texte (ou null si absent).",
    user_prompt="{{note.note}}",
)
