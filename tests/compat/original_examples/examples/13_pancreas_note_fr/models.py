"""Data models of the pancreas note pipeline (the extraction models shortened)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ClinicalCase(BaseModel):
    text: str = Field(..., description="Text of the clinical case")


class ClassifiedCase(BaseModel):
    category: str = Field(..., description="pancreas | lymphoma | other")


class ClinicalNote(BaseModel):
    note: str = Field(..., description="Reformulated clinical note")


class ExtractedInfo(BaseModel):
    sexe: Literal["Homme", "Femme"] | None = Field(None, description="Sexe du patient")
    age_diagnostic: int | None = Field(None, description="Age au diagnostic (annees)")
    type_histologique: str | None = Field(None, description="Type histologique")
    chimiotherapie: str | None = Field(None, description="Schema de chimiotherapie")


class SpanInfo(BaseModel):
    sexe_span: str | None = None
    age_diagnostic_span: str | None = None
    type_histologique_span: str | None = None
    chimiotherapie_span: str | None = None


ExtractedInfo.model_rebuild()
