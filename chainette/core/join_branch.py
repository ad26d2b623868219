"""Import path kept from the spec: ``from chainette.core.join_branch import JoinBranch``."""

from chainette.core.branch import JoinBranch

__all__ = ["JoinBranch"]
