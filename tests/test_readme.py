"""The README's set-up commands and quick start run as written."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_two_setup_commands_and_ci_runs_the_second():
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    install_and_run, install_and_test = blocks[0].strip(), blocks[1].strip()
    assert README.index("```bash") < README.index("\n## ")
    assert install_and_run.startswith("python -m pip install -e . && chainette run examples/")
    ci = (ROOT / ".ci" / "run").read_text()
    assert install_and_test in ci
    target = install_and_run.split("chainette run ", 1)[1].split()[0].split(":")[0]
    assert (ROOT / target).is_file()


@pytest.mark.integration
def test_quick_start_runs_on_the_default_local_engine():
    code = re.findall(r"```python\n(.*?)```", README, re.S)[0]
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    results = scope["results"]
    assert results.rows_in == 2
    assert len(results["qa"]) + len(results.errors) == 2
    assert all(isinstance(r.value, scope["Answer"]) for r in results["qa"])
