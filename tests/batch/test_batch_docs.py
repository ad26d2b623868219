"""docs/batch.md matches the code: its engines block is a valid config, its settings table
lists every ``batch:`` field with its default, its limits are the constants, its links exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from chainette.engine.batch.settings import BATCH_MAX_IN_FLIGHT, MAX_REQUESTS_PER_FILE, BatchSettings
from chainette.engine.registry import engine_configs

DOCS = Path(__file__).resolve().parents[2] / "docs"
TEXT = (DOCS / "batch.md").read_text(encoding="utf-8")


def test_engines_block_is_a_valid_config():
    block = re.search(r"```yaml\n(.*?)```", TEXT, re.S).group(1)
    (cfg,) = engine_configs(yaml.safe_load(block)["engines"], source="docs/batch.md")
    assert cfg.mode == "batch" and cfg.batch.linger_s == 30 and cfg.max_in_flight == BATCH_MAX_IN_FLIGHT


def test_settings_table_lists_every_field_and_default():
    table = TEXT[TEXT.index("## Settings (`batch:`)") :]
    defaults = BatchSettings()
    for name in BatchSettings.model_fields:
        assert f"`{name}`" in table, name
    for name in ("max_requests", "max_bytes", "linger_s", "requeue"):
        value = getattr(defaults, name)
        assert re.search(rf"`{name}` \| {value} \|", table) or re.search(rf"`{name}` \| {value:g} \|", table), name
    assert f"{MAX_REQUESTS_PER_FILE:,}" in TEXT and "200 MB" in TEXT and f"max_in_flight: {BATCH_MAX_IN_FLIGHT}" in TEXT


def test_links_exist():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", TEXT):
        if not target.startswith("http"):
            assert (DOCS / target).resolve().exists(), target
