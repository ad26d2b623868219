"""Branches and parallel groups (defined with ``Node`` in :mod:`chainette.core.node`)."""

from chainette.core.node import Branch, ChainItem, JoinBranch, Parallel, Sequence, as_branch, normalize_items

__all__ = ["Branch", "ChainItem", "JoinBranch", "Parallel", "Sequence", "as_branch", "normalize_items"]
