"""Text to syntax tree for the rule language, with errors that say what was expected and where.

Every failure is a RuleError with a line and column; Lark's own exceptions never escape.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import cache, lru_cache

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from metacrm.platform.errors import Position, RuleError
from metacrm.runtime.rules import ast

MAX_LENGTH = 10_000
MAX_DEPTH = 64

VARIABLES = ("$user", "$now", "$today")

# Tokens only a value can start with: when they were expected, the user left a value out.
_VALUE_STARTS = frozenset({"INT", "STRING"})
_OPERATORS = frozenset(
    {"COMPARE_OP", "IN", "CONTAINS", "STARTSWITH", "ENDSWITH", "IS", "PLUS", "MINUS", "STAR"}
    | {"SLASH", "AND", "OR"}
)
_COMPARISONS = frozenset({"COMPARE_OP", "IN", "CONTAINS", "STARTSWITH", "ENDSWITH", "IS"})
# How an expected token is named in a message, in the order messages list them.
_DESCRIPTIONS = {
    "an operator": "an operator",
    "RPAR": "')'",
    "RSQB": "']'",
    "COMMA": "','",
    "IN": "'in'",
    "NULL": "'null'",
    "NOT": "'not'",
    "BLANK": "'blank'",
    "NAME": "a field name",
    "$END": "the end of the expression",
}
# Characters people type from other languages, and what to write instead.
_CHARACTER_HINTS = {
    "=": "use '==' to compare",
    "!": "use '!=' or 'not'",
    "&": "use 'and'",
    "|": "use 'or'",
    "$": "expected a name after '$', such as $user.id, $now or $today",
}
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "/": "/",
}


@cache
def _parser() -> Lark:
    return Lark.open(
        "grammar.lark",
        rel_to=__file__,
        parser="lalr",
        lexer="basic",
        maybe_placeholders=False,
    )


@lru_cache(maxsize=2048)
def parse(text: str) -> ast.Node:
    """Parse one expression; raise RuleError with a position for anything that is not one."""
    _check_input(text)
    try:
        tree = _parser().parse(text)
    except UnexpectedCharacters as exc:
        raise _character_error(text, exc) from None
    except UnexpectedToken as exc:
        raise _token_error(text, exc) from None
    except (UnexpectedInput, LarkError) as exc:
        raise RuleError("the expression could not be read", _end_position(text)) from exc
    _check_tree_depth(tree)
    node = _build(_subtree_at(tree, 0))
    if ast.depth(node) > MAX_DEPTH:
        raise RuleError(
            f"the expression is nested too deeply (more than {MAX_DEPTH} levels)", node.pos
        )
    return node


def _check_input(text: str) -> None:
    if len(text) > MAX_LENGTH:
        raise RuleError(
            f"the expression is too long ({len(text)} characters, at most {MAX_LENGTH})",
            Position(1, 1),
        )
    if not text.strip():
        raise RuleError("the expression is empty; expected a value", Position(1, 1))
    for offset, char in enumerate(text):
        if char == "\x00" or "\ud800" <= char <= "\udfff":
            raise RuleError(
                f"the character {_show_char(char)} is not allowed",
                _position_at(text, offset),
            )


def _position_at(text: str, offset: int) -> Position:
    line = text.count("\n", 0, offset) + 1
    return Position(line, offset - (text.rfind("\n", 0, offset) + 1) + 1)


def _end_position(text: str) -> Position:
    """Just after the last character that is not white space."""
    return _position_at(text, len(text.rstrip()))


def _show_char(char: str) -> str:
    return f"'{char}'" if char.isprintable() else f"U+{ord(char):04X}"


def _character_error(text: str, exc: UnexpectedCharacters) -> RuleError:
    char = text[exc.pos_in_stream or 0]
    position = Position(exc.line or 1, exc.column or 1)
    if char in "\"'":
        return RuleError(f"unterminated string: close it with {char} on the same line", position)
    hint = _CHARACTER_HINTS.get(char)
    if hint:
        return RuleError(f"unexpected {_show_char(char)}; {hint}", position)
    return RuleError(f"unexpected character {_show_char(char)}", position)


def _token_error(text: str, exc: UnexpectedToken) -> RuleError:
    token: Token = exc.token
    at_end = token.type == "$END"
    found = "end of the expression" if at_end else f"'{token.value}'"
    if at_end:
        position, offset = _end_position(text), len(text)
    else:
        position, offset = Position(token.line or 1, token.column or 1), token.start_pos or 0
    before = _tokens_before(text, offset)
    expected = set(exc.expected)
    if expected & _VALUE_STARTS:
        message = f"expected a value after '{before[-1].value}'" if before else "expected a value"
        if not at_end:
            message = f"{message}, found {found}"
        return RuleError(message, position)
    if token.type in _COMPARISONS and not expected & _COMPARISONS:
        return RuleError(
            "comparisons cannot be chained; join them with 'and' or 'or', or add parentheses",
            position,
        )
    return RuleError(f"unexpected {found}; expected {_describe(expected, before)}", position)


def _describe(expected: set[str], before: list[Token]) -> str:
    # LALR merges look-aheads of similar states, so closers are listed from the brackets
    # actually open rather than from the parser's set.
    closers = {"RPAR", "RSQB", "COMMA", "$END"}
    if expected & closers:
        expected = (expected - closers) | _closers(before)
    operators = expected & _OPERATORS
    if len(operators) > 1:
        expected = (expected - operators - {"NOT"}) | {"an operator"}
    wanted = [text for name, text in _DESCRIPTIONS.items() if name in expected]
    if not wanted:
        return "something else"
    if len(wanted) == 1:
        return wanted[0]
    return f"{', '.join(wanted[:-1])} or {wanted[-1]}"


def _closers(before: list[Token]) -> set[str]:
    """What may close the innermost open bracket: a group, a call's arguments or a list."""
    stack: list[str] = []
    previous: Token | None = None
    for token in before:
        if token.type == "LPAR":
            is_call = previous is not None and previous.type == "NAME"
            stack.append("call" if is_call else "group")
        elif token.type == "LSQB":
            stack.append("list")
        elif token.type in ("RPAR", "RSQB") and stack:
            stack.pop()
        previous = token
    if not stack:
        return {"$END"}
    return {"group": {"RPAR"}, "call": {"RPAR", "COMMA"}, "list": {"RSQB", "COMMA"}}[stack[-1]]


def _tokens_before(text: str, offset: int) -> list[Token]:
    tokens: list[Token] = []
    try:
        for token in _parser().lex(text):
            if (token.start_pos or 0) >= offset:
                break
            tokens.append(token)
    except LarkError:
        pass
    return tokens


def _check_tree_depth(tree: Tree) -> None:
    """Refuse deep nesting before anything recursive walks the tree."""
    stack: list[tuple[Tree, int]] = [(tree, 0)]
    while stack:
        current, level = stack.pop()
        if level > MAX_DEPTH:
            raise RuleError(
                f"the expression is nested too deeply (more than {MAX_DEPTH} levels)",
                _tree_position(current),
            )
        stack.extend((child, level + 1) for child in current.children if isinstance(child, Tree))


def _first_token(tree: Tree | Token) -> Token:
    while isinstance(tree, Tree):
        tree = tree.children[0]
    return tree


def _tree_position(tree: Tree | Token) -> Position:
    token = _first_token(tree)
    return Position(token.line or 1, token.column or 1)


def _token_position(token: Token) -> Position:
    return Position(token.line or 1, token.column or 1)


def _subtrees(tree: Tree) -> list[Tree]:
    return [child for child in tree.children if isinstance(child, Tree)]


def _tokens(tree: Tree, kind: str) -> list[Token]:
    return [c for c in tree.children if isinstance(c, Token) and c.type == kind]


def _token_at(tree: Tree, index: int) -> Token:
    """The child at `index`, which the grammar makes a token."""
    child = tree.children[index]
    if not isinstance(child, Token):
        raise RuleError("the expression could not be read", _tree_position(tree))
    return child


def _subtree_at(tree: Tree, index: int) -> Tree:
    """The child at `index`, which the grammar makes a subtree."""
    child = tree.children[index]
    if not isinstance(child, Tree):
        raise RuleError("the expression could not be read", _tree_position(tree))
    return child


def _build(tree: Tree) -> ast.Node:
    return _BUILDERS[str(tree.data)](tree, _tree_position(tree))


def _bool_op(tree: Tree, pos: Position) -> ast.Node:
    op = "or" if str(tree.data) == "or_expr" else "and"
    return ast.BoolOp(op, tuple(_build(t) for t in _subtrees(tree)), pos=pos)


def _not(tree: Tree, pos: Position) -> ast.Node:
    return ast.Not(_build(_subtrees(tree)[0]), pos=pos)


def _compare(tree: Tree, pos: Position) -> ast.Node:
    left, right = _subtrees(tree)
    op = " ".join(c.value for c in tree.children if isinstance(c, Token))
    return ast.Compare(op, _build(left), _build(right), pos=pos)


def _is_check(tree: Tree, pos: Position) -> ast.Node:
    words = [c.value for c in tree.children if isinstance(c, Token)]
    return ast.IsCheck(_build(_subtrees(tree)[0]), words[-1], "not" in words, pos=pos)


def _arith_chain(tree: Tree, pos: Position) -> ast.Node:
    node = _build(_subtree_at(tree, 0))
    for at in range(1, len(tree.children) - 1, 2):
        op, operand = _token_at(tree, at), _subtree_at(tree, at + 1)
        node = ast.Arith(op.value, node, _build(operand), pos=pos)
    return node


def _neg(tree: Tree, pos: Position) -> ast.Node:
    (inner,) = _subtrees(tree)
    operand = _build(inner)
    # Fold `-5` into one literal so it reads like a number everywhere (and fits int64).
    if str(inner.data) in ("integer", "decimal") and isinstance(operand, ast.Literal):
        value = operand.value
        if isinstance(value, int | Decimal):
            return ast.Literal(-value, operand.kind, pos=pos)
    return ast.Neg(operand, pos=pos)


# Integers are 64-bit in both databases; longer digit runs are refused before int() reads them.
MAX_INTEGER_DIGITS = 19


def _integer(tree: Tree, pos: Position) -> ast.Node:
    digits = str(tree.children[0]).lstrip("0") or "0"
    if len(digits) > MAX_INTEGER_DIGITS or int(digits) > 2**63 - 1:
        raise RuleError("this number is too large for an integer (at most 19 digits)", pos)
    return ast.Literal(int(digits), "integer", pos=pos)


def _decimal(tree: Tree, pos: Position) -> ast.Node:
    return ast.Literal(Decimal(_token_at(tree, 0).value), "decimal", pos=pos)


def _string(tree: Tree, pos: Position) -> ast.Node:
    return ast.Literal(_unescape(_token_at(tree, 0)), "text", pos=pos)


def _constant(value: bool | None, kind: str) -> Callable[[Tree, Position], ast.Node]:
    def build(_tree: Tree, pos: Position) -> ast.Node:
        return ast.Literal(value, kind, pos=pos)

    return build


def _list(tree: Tree, pos: Position) -> ast.Node:
    return ast.ListLit(tuple(_build(t) for t in _subtrees(tree)), pos=pos)


def _call(tree: Tree, pos: Position) -> ast.Node:
    name = _token_at(tree, 0)
    return ast.Call(name.value, tuple(_build(t) for t in _subtrees(tree)), pos=pos)


def _path(tree: Tree, pos: Position) -> ast.Node:
    names = _tokens(tree, "NAME")
    path = tuple(n.value for n in names)
    positions = tuple(_token_position(n) for n in names)
    if path[0] == "old" and len(path) > 1:
        return ast.OldRef(path[1:], segment_pos=positions[1:], pos=pos)
    return ast.FieldRef(path, segment_pos=positions, pos=pos)


def _variable(tree: Tree, pos: Position) -> ast.Node:
    var = _token_at(tree, 0)
    attrs = _tokens(tree, "NAME")
    if var.value == "$user":
        if len(attrs) != 1:
            raise RuleError("expected one attribute after $user, such as $user.id", pos)
        return ast.UserRef(attrs[0].value, pos=pos)
    if var.value in ("$now", "$today"):
        if attrs:
            raise RuleError(f"{var.value} has no attributes", _token_position(attrs[0]))
        return ast.Now(pos=pos) if var.value == "$now" else ast.Today(pos=pos)
    raise RuleError(
        f"unknown variable '{var.value}'",
        pos,
        _close_matches(var.value, VARIABLES),
    )


def _paren(tree: Tree, _pos: Position) -> ast.Node:
    return _build(_subtrees(tree)[0])


def _close_matches(word: str, choices: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)


def _unescape(token: Token) -> str:
    body = token.value[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        escaped = body[i + 1]
        where = Position(token.line or 1, (token.column or 1) + 1 + i)
        if escaped == "u":
            digits = body[i + 2 : i + 6]
            if len(digits) != 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise RuleError("expected four hex digits after \\u", where)
            code = int(digits, 16)
            if code == 0 or 0xD800 <= code <= 0xDFFF:
                raise RuleError(f"\\u{digits} is not an allowed character", where)
            out.append(chr(code))
            i += 6
            continue
        if escaped not in _ESCAPES:
            raise RuleError(
                f"unknown escape '\\{escaped}' in a string; write '\\\\' for a backslash",
                where,
            )
        out.append(_ESCAPES[escaped])
        i += 2
    return "".join(out)


_BUILDERS: dict[str, Callable[[Tree, Position], ast.Node]] = {
    "or_expr": _bool_op,
    "and_expr": _bool_op,
    "not_": _not,
    "compare": _compare,
    "is_check": _is_check,
    "sum": _arith_chain,
    "product": _arith_chain,
    "neg": _neg,
    "integer": _integer,
    "decimal": _decimal,
    "string": _string,
    "true": _constant(True, "boolean"),
    "false": _constant(False, "boolean"),
    "null": _constant(None, "null"),
    "list": _list,
    "call": _call,
    "path": _path,
    "variable": _variable,
    "paren": _paren,
}
