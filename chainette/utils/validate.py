"""Compatibility import path kept from the spec: the code lives in :mod:`chainette.core.validation`
(``validate_chain_io``, the original Chainette's check, in :mod:`chainette.core.input_models`)."""

from chainette.core.input_models import validate_chain_io
from chainette.core.validation import chain_input_model, iter_nodes, iter_steps, validate_chain

__all__ = ["chain_input_model", "iter_nodes", "iter_steps", "validate_chain", "validate_chain_io"]
