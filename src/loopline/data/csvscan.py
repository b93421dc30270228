"""Byte-level facts about CSV text that pyarrow's parser does not report.

pyarrow accepts a quote that is never closed: the field runs to the end of the file, and
every line after the quote becomes part of one value. :func:`scan_quotes` finds such a
field, and any quoted field longer than a limit (an unclosed quote that a later quote
happens to close), before the file is parsed, so that the reader can refuse it with the
line where the quote opened.

The scan follows the quoting rules pyarrow's parser applies: a quote opens a quoted field
only at the start of a field (the first byte of the data, or right after a delimiter or a
line break); inside a quoted field two quotes stand for one, and a single quote closes it;
anywhere else a quote is an ordinary character. Only runs of consecutive quotes decide
anything, so the scan works on the positions of quote bytes with numpy and reads a file
at close to the speed of the disk, in 4 MiB chunks.

The text must be in an ASCII-compatible encoding (UTF-8, Latin-1, cp1252, Shift-JIS ...):
quotes, delimiters and line breaks are then single bytes that no other character
contains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from loopline.data.errors import UnterminatedQuoteError

#: Quoted fields longer than this many bytes are refused unless the caller allows more.
DEFAULT_MAX_FIELD_BYTES = 1 << 20
CHUNK_BYTES = 1 << 22
_QUOTE = ord('"')
_LF = ord("\n")
_CR = ord("\r")


@dataclass(frozen=True)
class QuoteScan:
    """What :func:`scan_quotes` found."""

    has_quotes: bool
    #: Byte offset of the quote that opens a field which is never closed, if any.
    unterminated_at: int | None = None
    #: Byte offset of the first quoted field longer than the limit, and its length.
    too_long_at: int | None = None
    too_long_bytes: int = 0


def scan_quotes(
    stream: Any,
    delimiter: str,
    *,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
    offset: int = 0,
    chunk_bytes: int = CHUNK_BYTES,
) -> QuoteScan:
    """Scan ``stream`` (binary, positioned at the first byte of the data, which is
    ``offset`` in the file) for quoted fields that never close or are too long."""
    import numpy as np

    state = _State(ord(delimiter))
    base = offset
    while chunk := stream.read(chunk_bytes):
        data = np.frombuffer(chunk, dtype=np.uint8)
        state.feed(data, base, max_field_bytes)
        base += len(data)
        if state.too_long_at is not None and not state.inside:
            break  # a closed field over the limit: nothing after it changes the verdict
    state.finish(max_field_bytes)
    too_long = state.too_long_at
    if state.inside and (too_long is None or too_long >= state.open_at):
        return QuoteScan(True, unterminated_at=state.open_at)
    if too_long is not None:
        return QuoteScan(True, too_long_at=too_long, too_long_bytes=state.too_long_bytes)
    return QuoteScan(state.has_quotes)


class _State:
    """The quoting state between chunks: inside a quoted field or not, where it opened,
    and a run of quotes that reaches the end of a chunk (it may go on in the next)."""

    def __init__(self, delimiter: int) -> None:
        self.delimiter = delimiter
        self.inside = False
        self.open_at = 0
        self.has_quotes = False
        self.too_long_at: int | None = None
        self.too_long_bytes = 0
        self._previous: int | None = None  # the byte before the chunk (None: data start)
        self._pending: tuple[int, int, bool] | None = None  # (start, length, at field start)

    def feed(self, data: Any, base: int, limit: int) -> None:
        import numpy as np

        starts, lengths, boundary = self._runs(data)
        starts += base
        if self._pending is not None:
            p_start, p_length, p_boundary = self._pending
            self._pending = None
            if len(starts) and starts[0] == base:
                starts[0], lengths[0], boundary[0] = p_start, p_length + lengths[0], p_boundary
            else:
                starts = np.r_[p_start, starts]
                lengths = np.r_[p_length, lengths]
                boundary = np.r_[p_boundary, boundary]
        end = base + len(data)
        if len(starts) and starts[-1] + lengths[-1] == end:
            self._pending = (int(starts[-1]), int(lengths[-1]), bool(boundary[-1]))
            starts, lengths, boundary = starts[:-1], lengths[:-1], boundary[:-1]
        if len(starts) or self._pending is not None:
            self.has_quotes = True
        self._advance(starts, lengths, boundary, limit)
        self._previous = int(data[-1])
        # The field's bytes so far (a run of quotes at the end may still close it).
        reached = self._pending[0] if self._pending is not None else end
        if self.inside and reached - self.open_at - 1 > limit and self.too_long_at is None:
            # Still open and already over the limit: it is refused either way; the rest of
            # the scan tells whether it ever closes.
            self.too_long_at, self.too_long_bytes = self.open_at, reached - self.open_at - 1

    def finish(self, limit: int) -> None:
        import numpy as np

        if self._pending is not None:
            start, length, boundary = self._pending
            self._pending = None
            self._advance(
                np.array([start], dtype=np.int64),
                np.array([length], dtype=np.int64),
                np.array([boundary]),
                limit,
            )

    def _runs(self, data: Any) -> tuple[Any, Any, Any]:
        """Runs of consecutive quotes in ``data``: starts, lengths, and whether each
        begins a field (follows a delimiter or a line break, or starts the data)."""
        import numpy as np

        positions = np.flatnonzero(data == _QUOTE)
        if not len(positions):
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, dtype=bool)
        breaks = np.flatnonzero(np.diff(positions) != 1) + 1
        starts = positions[np.r_[0, breaks]].astype(np.int64)
        lengths = np.diff(np.r_[0, breaks, len(positions)]).astype(np.int64)
        before = data[np.maximum(starts - 1, 0)]
        boundary = (before == self.delimiter) | (before == _LF) | (before == _CR)
        if starts[0] == 0:
            prev = self._previous
            boundary[0] = prev is None or prev in (self.delimiter, _LF, _CR)
        return starts, lengths, boundary

    def _advance(self, starts: Any, lengths: Any, boundary: Any, limit: int) -> None:
        """Apply runs of quotes to the state; note the first closed field over ``limit``.

        Inside a quoted field, pairs of quotes are literal and an odd run closes it. Outside,
        a run at the start of a field opens one (its first quote), and it closes again if
        the rest of the run is odd; a run elsewhere is literal. So an odd run at a field
        start flips the state, an odd run elsewhere leaves it outside, an even run keeps it.
        """
        import numpy as np

        n = len(starts)
        if n == 0:
            return
        odd = (lengths % 2) == 1
        flip = odd & boundary
        reset = odd & ~boundary
        last_reset = np.maximum.accumulate(np.where(reset, np.arange(n), -1))
        flips = np.cumsum(flip)
        since = flips - flips[np.maximum(last_reset, 0)]
        after = np.where(last_reset >= 0, since % 2, (int(self.inside) + flips) % 2).astype(bool)
        before = np.r_[self.inside, after[:-1]]
        opens = starts[~before & after]
        closes = (starts + lengths - 1)[before & ~after]
        if self.inside:
            opens = np.r_[self.open_at, opens]
        paired = min(len(opens), len(closes))
        if self.too_long_at is None:
            # Fields that open and close, and those made of one even run at a field start
            # (quotes only: an empty field, or escaped quotes).
            whole = ~before & ~after & boundary & ~odd
            firsts = np.r_[opens[:paired], starts[whole]]
            sizes = np.r_[closes[:paired] - opens[:paired] - 1, lengths[whole] - 2]
            over = np.flatnonzero(sizes > limit)
            if len(over):
                first = over[np.argmin(firsts[over])]
                self.too_long_at = int(firsts[first])
                self.too_long_bytes = int(sizes[first])
        self.inside = bool(after[-1])
        if self.inside:
            self.open_at = int(opens[-1])


def line_at(stream: Any, offset: int, *, start: int = 0, chunk_bytes: int = CHUNK_BYTES) -> int:
    """The 1-based line of byte ``offset``: the line breaks before it (LF, CRLF or a lone
    CR) plus one. ``stream`` is positioned at byte ``start`` of the same text."""
    import numpy as np

    lines = 1
    base = start
    previous_cr = False
    while base < offset:
        chunk = stream.read(min(chunk_bytes, offset - base))
        if not chunk:
            break
        data = np.frombuffer(chunk, dtype=np.uint8)
        lf = data == _LF
        lone_cr = data == _CR
        lone_cr[:-1] &= ~lf[1:]  # CRLF is one break, counted at its LF
        if previous_cr and data[0] != _LF:
            lines += 1  # the previous chunk ended with a lone CR
        previous_cr = bool(lone_cr[-1])
        lone_cr[-1] = False  # decided by the next byte
        lines += int(np.count_nonzero(lf)) + int(np.count_nonzero(lone_cr))
        base += len(data)
    if previous_cr:
        lines += 1  # a lone CR right before ``offset``
    return lines


def quote_error(
    found: QuoteScan,
    *,
    source: str | None,
    line: int,
    byte_offset: int | None,
    max_field_bytes: int,
) -> UnterminatedQuoteError:
    """The error for what :func:`scan_quotes` found, naming the line the quote opens on."""
    where = f"line {line}" + (f" (byte offset {byte_offset})" if byte_offset is not None else "")
    hint = (
        'Close the quote; a quote inside a quoted field is written twice (""), and a '
        "field with a delimiter, a quote or a line break must be quoted whole"
    )
    if found.unterminated_at is not None:
        return UnterminatedQuoteError(
            f"has a quote on {where} that opens a field and is never closed: the rest "
            "of the file would be read as one value",
            source=source,
            line=line,
            byte_offset=byte_offset,
            unterminated=True,
            hint=hint,
        )
    return UnterminatedQuoteError(
        f"has a quoted field that opens on {where} and runs for more than "
        f"{max_field_bytes:,} bytes (max_field_bytes); is a closing quote missing?",
        source=source,
        line=line,
        byte_offset=byte_offset,
        unterminated=False,
        hint=hint + "; if the field really is that long, raise max_field_bytes",
    )


def refuse_unclosed_quotes(
    opener: Callable[[], IO[bytes]],
    *,
    source: str | None,
    delimiter: str = ",",
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
) -> None:
    """Raise UnterminatedQuoteError when the UTF-8 CSV text ``opener()`` gives has a quoted
    field that never closes (or runs over ``max_field_bytes``): for readers outside the
    data layer (batch prediction, request bodies, feedback files), so none of them reads
    the rest of a file as one value. ``opener`` is called once more to find the line."""
    with opener() as stream:
        found = scan_quotes(stream, delimiter, max_field_bytes=max_field_bytes)
    opened = found.unterminated_at if found.unterminated_at is not None else found.too_long_at
    if opened is None:
        return
    with opener() as stream:
        line = line_at(stream, opened)
    raise quote_error(
        found, source=source, line=line, byte_offset=opened, max_field_bytes=max_field_bytes
    )
