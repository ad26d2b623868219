"""Compatibility import path kept from the spec: the code lives in :mod:`chainette.dag`."""

from chainette.dag import to_ascii, to_mermaid, to_rich_tree, to_text

__all__ = ["to_rich_tree", "to_text", "to_ascii", "to_mermaid"]
