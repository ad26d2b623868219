"""13 - French clinical note generator: classify, filter, reformulate, extract, locate spans, upload."""

from config import setup_engines
from nodes import filter_node, upload_node
from steps import classify_step, extract_step, reformulate_step, span_step

from chainette import Chain


def create_pancreas_chain() -> Chain:
    """Create and configure the pipeline chain."""
    setup_engines()
    return Chain(
        name="Pancreas Cancer FR Note",
        steps=[classify_step, filter_node, reformulate_step, extract_step, span_step, upload_node],
        batch_size=100,
    )


pancreas_chain = create_pancreas_chain()
