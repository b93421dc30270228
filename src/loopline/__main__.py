"""``python -m loopline`` is the ``loopline`` command."""

from loopline.cli.main import run

if __name__ == "__main__":
    run()
