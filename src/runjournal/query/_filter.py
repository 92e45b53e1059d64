r"""Filter expressions over the run table, parsed by hand: nothing is ever evaluated as code.

``docs/query.md`` gives the grammar with examples; in short::

    expression := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" expression ")" | test
    test       := column op value
                | column ["not"] "in" "(" value ("," value)* [","] ")"
                | column "is" ["not"] "null"
    op         := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    value      := 'text' | "text" | number | true | false | null | nan | inf | -inf
    column     := a name such as params.lr, metrics.val/acc, tags.model, status
                | `any name in backquotes`  (a backquote inside is written ``)

Keywords are case-insensitive. A comparison of a run that lacks the column
is false, except ``= null`` (``is null``), which is true exactly then, and
``!= null``. Values compare by kind: numbers with numbers (NaN equals only
``nan``), strings with strings, booleans with booleans; a datetime column
(``start_time``, ``end_time``) with an ISO 8601 string or epoch seconds. Of
two values of different kinds, ``!=`` is true and the others false.

A syntax error raises :class:`~runjournal.errors.FilterError`, whose message
shows the expression with a caret under the column of the problem.

Example:
    >>> expression = parse_filter("params.lr >= 0.01 and tags.model = 'resnet'")
    >>> unparse(expression)
    "(params.lr >= 0.01 and tags.model = 'resnet')"
    >>> row = {"params.lr": 0.1, "tags.model": "resnet"}
    >>> matches(expression, row.get)
    True
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

from runjournal.errors import FilterError

__all__ = [
    "And",
    "Compare",
    "Expression",
    "In",
    "Not",
    "Or",
    "columns_of",
    "matches",
    "parse_filter",
    "parse_time",
    "unparse",
]

OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false", "nan", "inf"})
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_./@:+\-]*")
_NUMBER = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?![A-Za-z0-9_./@:+\-])|nan(?![A-Za-z0-9_]))",
    re.IGNORECASE,
)
_SYMBOLS = ("==", "!=", "<>", "<=", ">=", "=", "<", ">", "(", ")", ",")
_SPACE = re.compile(r"\s+")
_NAME_PART = re.compile(r"[A-Za-z0-9_./@:+\-]+")
_ESCAPES_HELP = r"""unknown escape in a string: use \\, \', \", \n or \t"""
_COLUMN_HELP = "expected a column name (params.<name>, metrics.<name>, tags.<name>, ...)"


# ------------------------------------------------------------------ the tree


@dataclass(frozen=True)
class Compare:
    """``column op value``; ``value`` None is ``null``."""

    column: str
    op: str
    value: Any


@dataclass(frozen=True)
class In:
    """``column in (values)``, or ``not in`` when ``negated``."""

    column: str
    values: tuple[Any, ...]
    negated: bool = False


@dataclass(frozen=True)
class Not:
    """``not item``."""

    item: Expression


@dataclass(frozen=True)
class And:
    """``a and b and ...``."""

    items: tuple[Expression, ...]


@dataclass(frozen=True)
class Or:
    """``a or b or ...``."""

    items: tuple[Expression, ...]


Expression: TypeAlias = Compare | In | Not | And | Or
"""A parsed filter."""


# ------------------------------------------------------------------ tokens


@dataclass(frozen=True)
class _Token:
    kind: str  # "name", "string", "number", "word" (keyword), "symbol", "end"
    text: str
    value: Any
    position: int  # 0-based offset in the expression


def _tokens(text: str) -> Iterator[_Token]:
    position = 0
    while True:
        space = _SPACE.match(text, position)
        if space:
            position = space.end()
        if position >= len(text):
            yield _Token("end", "", None, position)
            return
        token = _next_token(text, position)
        yield token
        position += len(token.text)


def _next_token(text: str, position: int) -> _Token:
    char = text[position]
    if char in "'\"":
        return _string(text, position)
    number = _NUMBER.match(text, position)
    if number and (char.isdigit() or char in "+-." or number.group().lower() in ("inf", "nan")):
        return _Token("number", number.group(), _number(number.group()), position)
    for symbol in _SYMBOLS:
        if text.startswith(symbol, position):
            return _Token("symbol", symbol, symbol, position)
    bare = _BARE.match(text, position)
    if bare and bare.group().lower() in _KEYWORDS:
        return _Token("word", bare.group(), bare.group().lower(), position)
    if bare or char == "`":
        return _column(text, position)
    raise _error(text, position, f"unexpected character {char!r}")


def _column(text: str, position: int) -> _Token:
    """A column name: bare and backquoted parts written next to each other."""
    parts: list[str] = []
    index = position
    while index < len(text):
        if text[index] == "`":
            part, index = _quoted_part(text, index)
        else:
            bare = _NAME_PART.match(text, index)
            if bare is None:
                break
            part, index = bare.group(), bare.end()
        parts.append(part)
    return _Token("name", text[position:index], "".join(parts), position)


def _number(text: str) -> int | float:
    lowered = text.lower()
    if lowered.lstrip("+-") in ("inf", "nan"):
        value = float(lowered)
        return math.nan if value != value else value  # noqa: PLR0124
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    return float(text)


def _string(text: str, position: int) -> _Token:
    quote = text[position]
    chars: list[str] = []
    index = position + 1
    escapes = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}
    while index < len(text):
        char = text[index]
        if char == quote:
            return _Token("string", text[position : index + 1], "".join(chars), position)
        if char == "\\":
            if index + 1 >= len(text) or text[index + 1] not in escapes:
                raise _error(text, index, _ESCAPES_HELP)
            chars.append(escapes[text[index + 1]])
            index += 2
            continue
        chars.append(char)
        index += 1
    raise _error(text, position, "string not closed")


def _quoted_part(text: str, position: int) -> tuple[str, int]:
    """The name in backquotes at ``position``, and the index after it."""
    chars: list[str] = []
    index = position + 1
    while index < len(text):
        if text[index] == "`":
            if text.startswith("``", index):
                chars.append("`")
                index += 2
                continue
            if not chars:
                raise _error(text, position, "empty name in backquotes")
            return "".join(chars), index + 1
        chars.append(text[index])
        index += 1
    raise _error(text, position, "name in backquotes not closed: a ` is missing")


def _error(text: str, position: int, message: str) -> FilterError:
    return FilterError(message, expression=text, position=position + 1)


# ------------------------------------------------------------------ parsing


class _Parser:
    def __init__(self, text: str, known: Callable[[str], bool] | None) -> None:
        self.text = text
        self.known = known
        self.tokens = _tokens(text)  # read one at a time: the first problem is the one shown
        self.current = next(self.tokens)

    @property
    def token(self) -> _Token:
        return self.current

    def take(self) -> _Token:
        token = self.current
        if token.kind != "end":
            self.current = next(self.tokens)
        return token

    def is_word(self, *words: str) -> bool:
        return self.token.kind == "word" and self.token.value in words

    def is_symbol(self, *symbols: str) -> bool:
        return self.token.kind == "symbol" and self.token.value in symbols

    def fail(self, message: str, token: _Token | None = None) -> FilterError:
        token = token or self.token
        found = "the end" if token.kind == "end" else repr(token.text)
        return _error(self.text, token.position, f"{message}, found {found}")

    def expression(self) -> Expression:
        items = [self.conjunction()]
        while self.is_word("or"):
            self.take()
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self) -> Expression:
        items = [self.negation()]
        while self.is_word("and"):
            self.take()
            items.append(self.negation())
        return items[0] if len(items) == 1 else And(tuple(items))

    def negation(self) -> Expression:
        if self.is_word("not"):
            self.take()
            return Not(self.negation())
        if self.is_symbol("("):
            opening = self.take()
            inner = self.expression()
            if not self.is_symbol(")"):
                raise self.fail(f"expected ')' to close the '(' at column {opening.position + 1}")
            self.take()
            return inner
        return self.test()

    def test(self) -> Expression:
        if self.token.kind != "name":
            raise self.fail(_COLUMN_HELP)
        token = self.take()
        column = token.value
        if self.known is not None and not self.known(column):
            raise _error(self.text, token.position, f"unknown column {column!r}")
        if self.is_word("is"):
            self.take()
            negated = self.is_word("not") and self.take() is not None
            if not self.is_word("null"):
                raise self.fail("expected 'null' after 'is'")
            self.take()
            return Compare(column, "!=" if negated else "=", None)
        if self.is_word("not", "in"):
            negated = self.take().value == "not"
            if negated and not self.is_word("in"):
                raise self.fail("expected 'in' after 'not'")
            if negated:
                self.take()
            return In(column, self.value_list(), negated)
        if not self.is_symbol(*_SYMBOL_OPS):
            raise self.fail(
                f"expected an operator ({', '.join(OPERATORS)}, in, is) after the column"
            )
        op = _SYMBOL_OPS[self.take().value]
        return Compare(column, op, self.value())

    def value(self) -> Any:
        token = self.token
        if token.kind in ("string", "number"):
            return self.take().value
        if token.kind == "word" and token.value in _LITERALS:
            self.take()
            return _LITERALS[token.value]
        raise self.fail("expected a value (a 'string', a number, true, false or null)")

    def value_list(self) -> tuple[Any, ...]:
        if not self.is_symbol("("):
            raise self.fail("expected '(' after 'in'")
        self.take()
        values = [self.value()]
        while self.is_symbol(","):
            self.take()
            if self.is_symbol(")"):
                break
            values.append(self.value())
        if not self.is_symbol(")"):
            raise self.fail("expected ',' or ')' in the list of values")
        self.take()
        return tuple(values)


_SYMBOL_OPS = {
    "=": "=",
    "==": "=",
    "!=": "!=",
    "<>": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
}
_LITERALS: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "nan": math.nan,
    "inf": math.inf,
}


def parse_filter(text: str, known: Callable[[str], bool] | None = None) -> Expression:
    """Parse a filter expression.

    Args:
        text: The expression.
        known: Says whether a column name exists; an unknown one is an error.

    Raises:
        FilterError: it is not valid; the message points at the column of the problem.

    Example:
        >>> parse_filter("metrics.`val loss` < 0.3")
        Compare(column='metrics.val loss', op='<', value=0.3)
        >>> parse_filter("params.lr >= and x")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        runjournal.errors.FilterError: expected a value (...), found 'and' at column 14
          params.lr >= and x
                       ^
    """
    if not isinstance(text, str):
        raise FilterError(
            f"a filter is a string, not {type(text).__name__}", expression="", position=1
        )
    parser = _Parser(text, known)
    if parser.token.kind == "end":
        raise parser.fail("expected a filter expression")
    expression = parser.expression()
    if parser.token.kind != "end":
        raise parser.fail("expected 'and', 'or' or the end")
    return expression


# ------------------------------------------------------------------ writing


def unparse(expression: Expression) -> str:
    """The canonical text of an expression; parsing it gives the same expression.

    Example:
        >>> unparse(parse_filter("status in ('failed','crashed',) and not metrics.x is null"))
        "(status in ('failed', 'crashed') and not metrics.x = null)"
    """
    if isinstance(expression, Compare):
        return f"{_column_text(expression.column)} {expression.op} {_value_text(expression.value)}"
    if isinstance(expression, In):
        values = ", ".join(_value_text(value) for value in expression.values)
        keyword = "not in" if expression.negated else "in"
        return f"{_column_text(expression.column)} {keyword} ({values})"
    if isinstance(expression, Not):
        return f"not {unparse(expression.item)}"
    joiner = " and " if isinstance(expression, And) else " or "
    return "(" + joiner.join(unparse(item) for item in expression.items) + ")"


def _column_text(column: str) -> str:
    if _BARE.fullmatch(column) and column.lower() not in _KEYWORDS and not _NUMBER.match(column):
        return column
    return "`" + column.replace("`", "``") + "`"


def _value_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return "'" + escaped.replace("\t", "\\t") + "'"


# ------------------------------------------------------------------ evaluating


def columns_of(expression: Expression) -> set[str]:
    """The columns an expression reads.

    Example:
        >>> sorted(columns_of(parse_filter("a.x = 1 or (b = 2 and not c in (3))")))
        ['a.x', 'b', 'c']
    """
    if isinstance(expression, (Compare, In)):
        return {expression.column}
    if isinstance(expression, Not):
        return columns_of(expression.item)
    return set().union(*(columns_of(item) for item in expression.items))


def matches(expression: Expression, column: Callable[[str], Any]) -> bool:
    """Whether a run whose column values ``column(name)`` gives passes the filter."""
    if isinstance(expression, Compare):
        return _compare(column(expression.column), expression.op, expression.value)
    if isinstance(expression, In):
        value = column(expression.column)
        found = any(_compare(value, "=", option) for option in expression.values)
        return (value is not None and not found) if expression.negated else found
    if isinstance(expression, Not):
        return not matches(expression.item, column)
    if isinstance(expression, And):
        return all(matches(item, column) for item in expression.items)
    return any(matches(item, column) for item in expression.items)


def _compare(value: Any, op: str, literal: Any) -> bool:
    if literal is None:  # `= null` holds for a missing value (or None), `!= null` for any other
        return (value is None) if op == "=" else (value is not None if op == "!=" else False)
    if value is None:  # a run without the column matches no other comparison
        return False
    pair = _comparable(value, literal)
    if pair is None:
        return op == "!="
    left, right = pair
    nans = _is_nan(left) + _is_nan(right)
    if nans:  # NaN equals NaN (the `nan` literal), and is neither smaller nor larger
        return (nans == 2) if op == "=" else (nans == 1 if op == "!=" else False)
    return bool(_OPS[op](left, right))


def _is_nan(value: Any) -> int:
    return int(isinstance(value, float) and math.isnan(value))


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _comparable(value: Any, literal: Any) -> tuple[Any, Any] | None:
    """The two sides in a form that compares, or None when their kinds differ."""
    if isinstance(value, bool) or isinstance(literal, bool):
        return (value, literal) if isinstance(value, bool) and isinstance(literal, bool) else None
    if isinstance(value, (int, float)) and isinstance(literal, (int, float)):
        return value, literal
    if isinstance(value, str) and isinstance(literal, str):
        return value, literal
    if isinstance(value, dt.datetime):
        if isinstance(literal, (int, float)):
            return value.timestamp(), literal
        if isinstance(literal, str):
            moment = _quiet_time(literal)
            return None if moment is None else (value, moment)
    return None


def _quiet_time(text: str) -> dt.datetime | None:
    try:
        return parse_time(text)
    except ValueError:
        return None


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 date or time as an aware datetime; without a zone it is local time.

    Raises:
        ValueError: not an ISO 8601 date or time.

    Example:
        >>> parse_time("2026-11-23T14:00:00+00:00").isoformat()
        '2026-11-23T14:00:00+00:00'
    """
    moment = dt.datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo is not None else moment.astimezone()
