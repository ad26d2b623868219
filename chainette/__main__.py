"""``python -m chainette``: the command-line interface."""

from chainette.cli import app

if __name__ == "__main__":  # pragma: no cover
    app(prog_name="chainette")
