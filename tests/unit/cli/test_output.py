"""How the command line shows failures: the frames of a traceback worth reading, and
commands that paste into a shell as they are."""

from __future__ import annotations

from loopline.cli.output import command_line, last_frames

TRACE = """Traceback (most recent call last):
  File "/usr/lib/python3.11/site-packages/pandas/core/indexes/base.py", line 3805, in get_loc
    return self._engine.get_loc(casted_key)
KeyError: 'no such column'

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/home/me/p/pipelines/example.py", line 40, in features
    return prepare(frame)
  File "/home/me/p/pipelines/helpers.py", line 12, in prepare
    return frame["no such column"]
  File "/usr/lib/python3.11/site-packages/pandas/core/frame.py", line 4102, in __getitem__
    indexer = self.columns.get_loc(key)
  File "/usr/lib/python3.11/site-packages/pandas/core/indexes/base.py", line 3812, in get_loc
    raise KeyError(key) from err
  File "/usr/lib/python3.11/site-packages/pandas/core/indexes/base.py", line 3813, in get_loc
    raise KeyError(key) from err
KeyError: 'no such column'
"""


def test_the_last_frames_and_the_users_own_deepest_frame_are_kept() -> None:
    shown = last_frames(TRACE, 3).splitlines()
    assert shown[0] == "Traceback (most recent call last):"
    assert shown[1] == "  ... 1 frame (all with --debug)"
    assert shown[2].startswith('  File "/home/me/p/pipelines/helpers.py", line 12')
    assert sum(line.startswith('  File "') for line in shown) == 4
    assert shown[-1] == "KeyError: 'no such column'"
    assert "direct cause" not in "\n".join(shown)  # of a chain, the last exception only


def test_all_frames_with_debug() -> None:
    assert last_frames(TRACE, None) == TRACE.rstrip("\n")


def test_commands_in_messages_paste_as_they_are() -> None:
    assert command_line("loopline", "data", "add", "x", "--dtype", "mean texture=string") == (
        "loopline data add x --dtype 'mean texture=string'"
    )
