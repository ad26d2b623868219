"""The "tools": plain Python functions the chain calls between LLM steps."""

from __future__ import annotations

import ast
import operator

# unit -> (dimension, factor to the base unit); temperatures are handled separately
UNITS: dict[str, tuple[str, float]] = {
    "km": ("length", 1000.0),
    "m": ("length", 1.0),
    "mi": ("length", 1609.344),
    "ft": ("length", 0.3048),
    "kg": ("mass", 1.0),
    "lb": ("mass", 0.45359237),
    "l": ("volume", 1.0),
    "gal": ("volume", 3.785411784),
    "c": ("temperature", 1.0),
    "f": ("temperature", 1.0),
}


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert between units of the same dimension; raises ValueError otherwise."""
    d_from, f_from = UNITS[from_unit]
    d_to, f_to = UNITS[to_unit]
    if d_from != d_to:
        raise ValueError(f"cannot convert {from_unit} ({d_from}) to {to_unit} ({d_to})")
    if d_from == "temperature":
        celsius = value if from_unit == "c" else (value - 32) * 5 / 9
        return celsius if to_unit == "c" else celsius * 9 / 5 + 32
    return value * f_from / f_to


_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
}


def calculate(expression: str) -> float:
    """A safe arithmetic evaluator (numbers, + - * / **, parentheses); no eval()."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.operand))
        raise ValueError(f"unsupported expression: {expression!r}")

    return ev(ast.parse(expression, mode="eval").body)
