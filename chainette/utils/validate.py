"""Compatibility import path kept from the spec: the code lives in :mod:`chainette.core.validation`."""

from chainette.core.validation import chain_input_model, iter_nodes, iter_steps, validate_chain

__all__ = ["chain_input_model", "iter_nodes", "iter_steps", "validate_chain"]
