"""The raw baseline sends exactly the system prompt a Chainette step sends (a fair comparison)."""

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_raw_client_body_matches_chainette_step_prompt(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import common
    from chainette_workloads import A

    from chainette.utils.json_schema import generate_json_output_prompt

    assert common.SYSTEM_PROMPT == generate_json_output_prompt(A)
    sys.modules.pop("common", None)
    sys.modules.pop("chainette_workloads", None)
