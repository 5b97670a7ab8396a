"""The syntax tree of the rule language: small frozen nodes shared by every backend.

The parser fills in `pos`; the type checker returns a copy of the tree with `vtype` set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from metacrm.platform.errors import Position

NOWHERE = Position(0, 0)

LiteralValue = str | int | Decimal | bool | date | datetime | None


@dataclass(frozen=True)
class Node:
    # Where the node's first token starts; not part of equality so trees compare by shape.
    pos: Position = field(default=NOWHERE, compare=False, kw_only=True)
    # The value type the checker found (text, integer, decimal, boolean, date, datetime, list,
    # null); None until checked.
    vtype: str | None = field(default=None, compare=False, kw_only=True)

    def children(self) -> tuple[Node, ...]:
        return ()


@dataclass(frozen=True)
class Literal(Node):
    """A constant; `kind` is its value type (the checker may turn text into date/datetime)."""

    value: LiteralValue
    kind: str


@dataclass(frozen=True)
class ListLit(Node):
    items: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.items


@dataclass(frozen=True)
class FieldRef(Node):
    """A field of the current record, or a path through lookups (`account.industry`)."""

    path: tuple[str, ...]
    # Where each segment starts, for errors that point into the path.
    segment_pos: tuple[Position, ...] = field(default=(), compare=False, kw_only=True)


@dataclass(frozen=True)
class OldRef(Node):
    """`old.stage`: the value before the change being checked."""

    path: tuple[str, ...]
    segment_pos: tuple[Position, ...] = field(default=(), compare=False, kw_only=True)


@dataclass(frozen=True)
class InputRef(Node):
    """`input.reason`: a value of a record action's input. The parser reads it as a field path;
    the checker makes it an input reference where an action's input is in scope."""

    path: tuple[str, ...]


@dataclass(frozen=True)
class UserRef(Node):
    """`$user.<attr>`: an attribute of the user the expression runs for."""

    attr: str


@dataclass(frozen=True)
class Now(Node):
    """`$now`: the current instant."""


@dataclass(frozen=True)
class Today(Node):
    """`$today`: the current date."""


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.args


@dataclass(frozen=True)
class Neg(Node):
    operand: Node

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Not(Node):
    operand: Node

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class BoolOp(Node):
    """`a and b and c` / `a or b`: n-ary so long chains stay shallow."""

    op: str
    operands: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.operands


@dataclass(frozen=True)
class Arith(Node):
    """`+ - * /`."""

    op: str
    left: Node
    right: Node

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Compare(Node):
    """`== != < <= > >=`, `in`, `not in`, `contains`, `startswith`, `endswith`."""

    op: str
    left: Node
    right: Node

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class IsCheck(Node):
    """`x is [not] null` / `x is [not] blank`."""

    operand: Node
    test: str
    negated: bool = False

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


def depth(node: Node) -> int:
    """How deep the tree is, walked without recursion so any input is safe to measure."""
    deepest = 0
    stack: list[tuple[Node, int]] = [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in current.children())
    return deepest
