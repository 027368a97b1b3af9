"""Splitting a long reply into chat bubbles, the way a person texts it.

A text is cut into pieces that are never split: a fenced code block, a list item (with its
indented continuation lines), a sentence, or, for a sentence longer than the bubble limit,
its words wrapped at the limit (a URL is one word, kept whole). Pieces are then packed
greedily into bubbles of at most ``limit`` characters, and a paragraph break (a blank
line) always starts a new bubble, except after a paragraph that ends with ``:`` or a
heading, which introduces what follows and joins it when both fit, and between two items
of a list. A piece longer than the limit (a long code block, list item or URL) is a bubble
of its own.

``BubbleSplitter`` does this on a stream: ``feed(chunk)`` returns the bubbles that are
complete (no text still to come can change them), ``flush()`` the rest. ``split_bubbles``
is the same splitter fed the whole text at once, so a streamed reply and the same text
sent with ``ctx.reply`` make the same bubbles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imbot.errors import SetupError

__all__ = ["DEFAULT_LIMIT", "BubbleSplitter", "Bubbles", "split_bubbles"]

DEFAULT_LIMIT = 400
"""Characters per bubble, by default: a few sentences, as people text."""

_MIN_LIMIT = 20
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_ITEM = re.compile(r"\s*(?:[-*+•]|\d{1,3}[.)])(?:\s|$)")
_PARTIAL_FENCE = re.compile(r" {0,3}(?:`{1,2}|~{1,2})")
_ITEM_START = re.compile(r"\s*(?:[-*+•]|\d{1,3}[.)]?)?")  # what may still become an item
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)")
_WORD = re.compile(r"\S+")
_URL = re.compile(r"[(<\[]?(?:[a-z][a-z0-9+.-]*://|www\.)", re.IGNORECASE)
# A period after these is not the end of a sentence ("e.g. this", "Dr. Who").
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "vs", "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "fig", "approx"}
)


@dataclass(frozen=True, slots=True)
class Bubbles:
    """How ``ctx.reply`` splits long text into bubbles: ``Bot(bubbles=Bubbles(...))``.

    Example:
        >>> bot = Bot(bubbles=Bubbles(limit=300))        # on in on_turn handlers only
        >>> bot = Bot(bubbles=Bubbles(limit=300, on=True))  # on in every handler

    Args:
        limit: the most characters in one bubble (at least 20). A code block, a list
            item or a URL longer than that is still sent whole, in a bubble of its own.
        on: ``True`` splits every ``ctx.reply``, ``False`` none; ``None`` (the default)
            splits in ``on_turn`` handlers and not in ``on_message`` ones. A reply's own
            ``bubbles=`` argument wins.

    Raises:
        SetupError: ``limit`` is below 20.
    """

    limit: int = DEFAULT_LIMIT
    on: bool | None = None

    def __post_init__(self) -> None:
        if self.limit < _MIN_LIMIT:
            raise SetupError(f"a bubble limit must be at least {_MIN_LIMIT}, got {self.limit}")

    @classmethod
    def of(cls, value: bool | Bubbles | None) -> Bubbles:
        """The settings a ``Bot(bubbles=...)`` argument stands for.

        Args:
            value: ``None`` (the default), ``True`` or ``False`` (``on``), or ``Bubbles``.
        """
        if isinstance(value, Bubbles):
            return value
        if value is None or isinstance(value, bool):
            return cls(on=value)
        raise SetupError(f"bubbles must be True, False, None or Bubbles(...), got {value!r}")


def split_bubbles(text: str, limit: int = DEFAULT_LIMIT) -> list[str]:
    """Split ``text`` into bubbles: paragraphs first, then sentences, at most ``limit`` long.

    Example:
        >>> split_bubbles("Sure! Here it is.\\n\\nAnything else?")
        ['Sure! Here it is.', 'Anything else?']

    Args:
        text: the text.
        limit: the most characters in one bubble (see ``Bubbles``).

    Returns:
        The bubbles, in order; none for blank text.
    """
    splitter = BubbleSplitter(limit)
    return splitter.feed(text) + splitter.flush()


@dataclass(slots=True)
class _Piece:
    start: int
    end: int
    kind: str  # "text", "item" or "code"
    brk: bool  # a blank line comes before it


class BubbleSplitter:
    """Split streamed text into bubbles, each returned as soon as it is complete.

    Example:
        >>> splitter = BubbleSplitter()
        >>> splitter.feed("First paragraph.\\n\\nSec")
        ['First paragraph.']
        >>> splitter.feed("ond one.") + splitter.flush()
        ['Second one.']

    Args:
        limit: the most characters in one bubble (see ``Bubbles``).
    """

    __slots__ = ("_buffer", "_in_fence", "_limit", "_midline")

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < _MIN_LIMIT:
            raise SetupError(f"a bubble limit must be at least {_MIN_LIMIT}, got {limit}")
        self._limit = limit
        self._buffer = ""
        self._midline = False  # the buffer starts inside a line another bubble ended
        self._in_fence = False

    def feed(self, chunk: str) -> list[str]:
        """Add text; return the bubbles it completed (often none)."""
        if not chunk:
            return []
        self._buffer += chunk
        if "\r" in self._buffer:
            self._buffer = self._buffer.replace("\r\n", "\n")
        if self._in_fence and "`" not in chunk and "~" not in chunk:
            return []  # still inside a code block: nothing can be complete yet
        return self._emit(final=False)

    def flush(self) -> list[str]:
        """The text is over: return the remaining bubbles."""
        return self._emit(final=True)

    def _emit(self, *, final: bool) -> list[str]:
        text = self._buffer
        pieces, closed = self._scan(text, final=final)
        packs = self._pack(text, pieces)
        if not packs:
            if final:
                self._buffer, self._midline = "", False
            return []
        done = packs if final else packs[:-1]
        last = text[packs[-1][0] : packs[-1][1]]
        if not final and closed and not _introduces(last) and pieces[-1].kind != "item":
            done = packs  # the paragraph ended (a list may go on after a blank line)
        elif not final and len(packs) > 1 and self._may_join(text, packs[-2], pieces):
            done = packs[:-2]
        if not done:
            return []
        end = done[-1][1]
        self._midline = text[end : end + 1] != "\n"
        self._buffer = text[end:]
        if final:
            self._buffer, self._midline = "", False
        return [text[start:stop] for start, stop in done]

    def _may_join(self, text: str, pack: tuple[int, int], pieces: list[_Piece]) -> bool:
        """Whether the last piece, still growing and starting a pack, may yet join ``pack``.

        Text only grows, but a sentence that grows past the limit is wrapped, and its first
        part may be as short as its first word: until that word does not fit either, the
        pack before it is not complete. And the start of a line after a blank line ("1")
        may yet turn out to be the next item of a list, which joins it.
        """
        start, stop = pack
        last = pieces[-1]
        if last.kind != "text" or text[stop : last.start].strip():
            return False  # an item or a code block never shrinks; or it does not start a pack
        if last.brk and not _introduces(text[start:stop]):
            line = text[text.rfind("\n", 0, last.start) + 1 :]
            return pieces[-2].kind == "item" and bool(_ITEM_START.fullmatch(line))
        word = _WORD.match(text, last.start, last.end)
        return word is not None and word.end() - start <= self._limit

    def _pack(self, text: str, pieces: list[_Piece]) -> list[tuple[int, int]]:
        packs: list[tuple[int, int]] = []
        for piece in pieces:
            if packs:
                start, stop = packs[-1]
                joins = not piece.brk or _introduces(text[start:stop])
                if joins and piece.end - start <= self._limit:
                    packs[-1] = (start, piece.end)
                    continue
            packs.append((piece.start, piece.end))
        return packs

    def _scan(self, text: str, *, final: bool) -> tuple[list[_Piece], bool]:
        """The pieces of ``text``, and whether it ends with a complete blank line.

        Unless ``final``, the last piece may still grow; every other piece is settled.
        """
        pieces: list[_Piece] = []
        brk = False
        item: _Piece | None = None
        fence: str | None = None
        pos = 0
        first = True
        self._in_fence = False
        while pos < len(text):
            newline = text.find("\n", pos)
            complete = newline >= 0
            end = newline if complete else len(text)
            line = text[pos:end]
            midline = first and self._midline
            first = False
            if fence is not None:
                pieces[-1].end = end
                if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                    fence = None
            elif not line.strip():
                if complete and not midline:
                    item, brk = None, True
            elif not complete and not final and _PARTIAL_FENCE.fullmatch(line):
                pass  # "``" may yet open a code block: wait for the rest of the line
            elif not midline and (opened := _FENCE.match(line)):
                fence = opened.group(1)
                pieces.append(_Piece(pos + line.index(fence), end, "code", brk))
                item, brk = None, False
            elif not midline and _ITEM.match(line):
                # A blank line between two items is a loose list, not a new paragraph.
                loose = item is None and bool(pieces) and pieces[-1].kind == "item"
                stripped = pos + len(line) - len(line.lstrip())
                item = _Piece(stripped, pos + len(line.rstrip()), "item", brk and not loose)
                pieces.append(item)
                brk = False
            elif item is not None and line[:1].isspace():
                item.end = pos + len(line.rstrip())
            else:
                item = None
                pieces.extend(self._sentences(text, pos, end, brk))
                brk = False
            pos = end + 1 if complete else end
        self._in_fence = fence is not None
        closed = brk and not final and fence is None
        return pieces, closed

    def _sentences(self, text: str, start: int, end: int, brk: bool) -> list[_Piece]:
        """The sentences of one line of text, a long one wrapped at the limit."""
        found: list[_Piece] = []
        line = text[start:end]
        cut = len(line) - len(line.lstrip())
        for match in _SENTENCE_END.finditer(line):
            if match.group() == "." and _abbreviated(line[cut : match.start()]):
                continue
            found.extend(self._wrap(text, start + cut, start + match.end()))
            cut = match.end()
            while cut < len(line) and line[cut].isspace():
                cut += 1
        if line[cut:].strip():
            found.extend(self._wrap(text, start + cut, start + len(line.rstrip())))
        if found:
            found[0].brk = brk
        return found

    def _wrap(self, text: str, start: int, end: int) -> list[_Piece]:
        """One sentence as pieces of at most ``limit`` characters, cut between words."""
        limit = self._limit
        if end - start <= limit:
            return [_Piece(start, end, "text", False)]
        pieces: list[_Piece] = []
        seg_start = seg_end = -1
        for word in _WORD.finditer(text, start, end):
            w_start, w_end = word.start(), word.end()
            if seg_start >= 0 and w_end - seg_start <= limit:
                seg_end = w_end
                continue
            if seg_start >= 0:
                pieces.append(_Piece(seg_start, seg_end, "text", False))
            # A word longer than the limit: a URL stays whole, anything else is cut.
            while w_end - w_start > limit and not _URL.match(word.group()):
                pieces.append(_Piece(w_start, w_start + limit, "text", False))
                w_start += limit
            seg_start, seg_end = w_start, w_end
        if seg_start >= 0:
            pieces.append(_Piece(seg_start, seg_end, "text", False))
        return pieces


def _abbreviated(before: str) -> bool:
    """Whether the period after ``before`` ends an abbreviation or an initial, not a sentence."""
    word = before.rsplit(None, 1)[-1] if before.strip() else ""
    word = word.lstrip("([\"'“‘").lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _introduces(bubble: str) -> bool:
    """Whether a bubble leads into the next paragraph: it ends with ``:`` or is a heading."""
    return bubble.endswith(":") or bubble.rsplit("\n", 1)[-1].startswith("#")
