"""Engine configuration for the pancreas note pipeline."""

from chainette import register_engine


def setup_engines():
    """Register all engines needed for the pipeline."""
    # ported: engine registration points at the fake backend (was: OpenAI gpt-4.1-mini, o4-mini and gpt-4.1,
    # with an OPENAI_API_KEY check)
    register_engine("openai_mini", backend="fake")
    register_engine("o4-mini", backend="fake")
    register_engine("gpt-4.1", backend="fake")
