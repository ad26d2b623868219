"""Compatibility import path kept from the spec: the code lives in :mod:`chainette.core.templates`."""

from chainette.core.templates import (
    FastTemplate,
    VariableUse,
    compile_fast,
    compile_template,
    environment,
    row_renderer,
    variables,
)

__all__ = [
    "environment",
    "compile_template",
    "VariableUse",
    "variables",
    "FastTemplate",
    "compile_fast",
    "row_renderer",
]
