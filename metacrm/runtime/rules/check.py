"""The type checker: resolves names against an entity and gives every node its value type.

It returns a typed copy of the tree (text literals compared with dates become date literals).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal

from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.platform.errors import Position, RuleError
from metacrm.runtime.rules import ast
from metacrm.runtime.rules.functions import (
    CHANGE_FUNCTIONS,
    COMMON,
    FUNCTIONS,
    SAME_AS_FIRST,
    TYPE_SET_NAMES,
    Signature,
)
from metacrm.runtime.rules.operators import (
    ARITHMETIC_RESULTS,
    BOOLEAN,
    COMPARISON_OPERANDS,
    DATE,
    DATETIME,
    DECIMAL,
    INTEGER,
    LIST,
    LOGICAL,
    MAX_LOOKUP_HOPS,
    NEGATABLE,
    NULL,
    NUMBERS,
    TEMPORAL,
    TEXT,
    USER_ATTRIBUTES,
    VALUE_TYPES,
    accepts,
    left_types,
    right_types,
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Where a record action's input is in scope, `input.<key>` names one of its values.
INPUT = "input"
MAX_DECIMAL_DIGITS = 30
_TEXT_OPERATORS = ("contains", "startswith", "endswith")


@dataclass(frozen=True)
class Scope:
    """What an expression may refer to."""

    entity: EntityDef
    resolve_entity: Callable[[str], EntityDef | None]
    # old.x and changed(x) need a change in view (validation rules, automations); filters don't.
    allow_change_refs: bool = False
    # A record action's input, where its steps' expressions read `input.<key>`: each key path
    # with its value type (None: a value the rule language can't use, such as a list).
    inputs: Mapping[tuple[str, ...], str | None] | None = None


@dataclass(frozen=True)
class Checked:
    node: ast.Node
    vtype: str
    # Field paths of the current record the expression reads.
    paths: frozenset[tuple[str, ...]]
    uses_change: bool


def check(node: ast.Node, scope: Scope, expect: str | None = None) -> Checked:
    """Type-check a parsed expression; `expect` is the type the whole must have, if any."""
    checker = _Checker(scope)
    typed = checker.visit(node)
    vtype = typed.vtype or NULL
    if expect is not None and not _fits(vtype, expect):
        if expect == BOOLEAN:
            message = f"the expression must be a condition (true or false), but it gives {vtype}"
        else:
            message = f"the expression must give {expect}, but it gives {vtype}"
        raise RuleError(message, node.pos)
    return Checked(typed, vtype, frozenset(checker.paths), checker.uses_change)


def _fits(actual: str, expected: str) -> bool:
    return actual == expected or (expected == DECIMAL and actual == INTEGER)


def close_matches(word: str, choices: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(word, sorted(set(choices)), n=3, cutoff=0.6)


def coerce_literal(node: ast.Node, target: str) -> ast.Node:
    """A text literal where a date or datetime is wanted becomes one, if it reads as ISO 8601."""
    if not (isinstance(node, ast.Literal) and node.kind == TEXT and target in TEMPORAL):
        return node
    text = str(node.value)
    try:
        if target == DATE:
            value: date = date.fromisoformat(text)
        else:
            parsed = datetime.fromisoformat(text)
            aware = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
            value = aware.astimezone(UTC)
    except (ValueError, OverflowError):
        example = "2024-01-31" if target == DATE else "2024-01-31T09:30:00Z"
        raise RuleError(
            f"'{text}' is not a valid {target} (write it like \"{example}\")", node.pos
        ) from None
    return ast.Literal(value, target, pos=node.pos, vtype=target)


class _Checker:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.paths: set[tuple[str, ...]] = set()
        self.uses_change = False

    def visit(self, node: ast.Node) -> ast.Node:
        method = getattr(self, f"_visit_{type(node).__name__}", None)
        if method is None:
            raise RuleError(f"'{type(node).__name__}' cannot be checked", node.pos)
        return method(node)

    # --- leaves ------------------------------------------------------------------------------

    def _visit_Literal(self, node: ast.Literal) -> ast.Node:
        value = node.value
        if node.kind == INTEGER and isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            raise RuleError(f"the number {value} is too large", node.pos)
        if isinstance(value, Decimal) and len(value.as_tuple().digits) > MAX_DECIMAL_DIGITS:
            raise RuleError(f"the number {value} has too many digits", node.pos)
        return replace(node, vtype=node.kind)

    def _visit_ListLit(self, node: ast.ListLit) -> ast.Node:
        raise RuleError("a list can only follow 'in' or 'not in'", node.pos)

    def _visit_FieldRef(self, node: ast.FieldRef) -> ast.Node:
        if self.scope.inputs is not None and node.path[0] == INPUT:
            return self._input(node, self.scope.inputs)
        found = self._resolve(node.path, node.segment_pos, node.pos)
        self.paths.add(node.path)
        return replace(node, vtype=_value_type(found, node.pos))

    def _input(self, node: ast.FieldRef, inputs: Mapping[tuple[str, ...], str | None]) -> ast.Node:
        """`input.a.b`: a key path of the action's input, typed by its input schema."""
        path = node.path[1:]
        if not path:
            example = f"input.{min(k[0] for k in inputs)}" if inputs else "input.reason"
            raise RuleError(f"name a key of the action's input, such as {example}", node.pos)
        where = node.segment_pos[-1] if node.segment_pos else node.pos
        if path not in inputs:
            if any(key[: len(path)] == path for key in inputs):
                raise RuleError(f"input.{'.'.join(path)} is an object; name one of its keys", where)
            known = [".".join(k) for k in inputs]
            listed = ", ".join(sorted(known)) or "nothing"
            raise RuleError(
                f"the action's input has no key {'.'.join(path)!r} (its input schema has: "
                f"{listed})",
                where,
                [f"input.{m}" for m in close_matches(".".join(path), known)],
            )
        vtype = inputs[path]
        if vtype is None:
            raise RuleError(
                f"input.{'.'.join(path)} has no value the rule language can use; give it type "
                "string, integer, number or boolean in the input schema",
                where,
            )
        return ast.InputRef(path, pos=node.pos, vtype=vtype)

    def _visit_OldRef(self, node: ast.OldRef) -> ast.Node:
        if not self.scope.allow_change_refs:
            raise RuleError(
                f"old.{'.'.join(node.path)} is only available in rules that see a change, not here",
                node.pos,
            )
        found = self._resolve(node.path, node.segment_pos, node.pos)
        self.uses_change = True
        return replace(node, vtype=_value_type(found, node.pos))

    def _visit_UserRef(self, node: ast.UserRef) -> ast.Node:
        vtype = USER_ATTRIBUTES.get(node.attr)
        if vtype is None:
            raise RuleError(
                f"unknown attribute $user.{node.attr}",
                node.pos,
                [f"$user.{m}" for m in close_matches(node.attr, USER_ATTRIBUTES)],
            )
        return replace(node, vtype=vtype)

    def _visit_Now(self, node: ast.Now) -> ast.Node:
        return replace(node, vtype=DATETIME)

    def _visit_Today(self, node: ast.Today) -> ast.Node:
        return replace(node, vtype=DATE)

    # --- operators ---------------------------------------------------------------------------

    def _visit_Neg(self, node: ast.Neg) -> ast.Node:
        operand = self.visit(node.operand)
        vtype = _vt(operand)
        if vtype != NULL and vtype not in NEGATABLE:
            raise RuleError(f"'-' needs a number, not {vtype}", operand.pos)
        return replace(node, operand=operand, vtype=vtype)

    def _visit_Not(self, node: ast.Not) -> ast.Node:
        operand = self._condition(node.operand, "not")
        return replace(node, operand=operand, vtype=BOOLEAN)

    def _visit_BoolOp(self, node: ast.BoolOp) -> ast.Node:
        operands = tuple(self._condition(o, node.op) for o in node.operands)
        return replace(node, operands=operands, vtype=BOOLEAN)

    def _condition(self, node: ast.Node, op: str) -> ast.Node:
        checked = self.visit(node)
        vtype = _vt(checked)
        if vtype != NULL and vtype not in LOGICAL:
            raise RuleError(f"'{op}' needs a condition (true or false), not {vtype}", node.pos)
        return checked

    def _visit_Arith(self, node: ast.Arith) -> ast.Node:
        left, right = self.visit(node.left), self.visit(node.right)
        lt, rt = _vt(left), _vt(right)
        table = ARITHMETIC_RESULTS[node.op]
        for operand, vtype in ((left, lt), (right, rt)):
            if vtype != NULL and vtype not in NUMBERS:
                hint = "; use concat() to join text" if node.op == "+" and vtype == TEXT else ""
                raise RuleError(f"cannot apply '{node.op}' to {lt} and {rt}{hint}", operand.pos)
        if lt == NULL and rt == NULL:
            vtype = NULL
        else:
            vtype = table[(rt if lt == NULL else lt, lt if rt == NULL else rt)]
        return replace(node, left=left, right=right, vtype=vtype)

    def _visit_IsCheck(self, node: ast.IsCheck) -> ast.Node:
        return replace(node, operand=self.visit(node.operand), vtype=BOOLEAN)

    def _visit_Compare(self, node: ast.Compare) -> ast.Node:
        pairs = COMPARISON_OPERANDS[node.op]
        left = self.visit(node.left)
        if node.op in ("in", "not in"):
            return self._membership(node, left, pairs)
        right = self.visit(node.right)
        left, right = coerce_literal(left, _vt(right)), coerce_literal(right, _vt(left))
        lt, rt = _vt(left), _vt(right)
        if not accepts(pairs, lt, rt):
            raise self._operand_error(node.op, pairs, left, right)
        return replace(node, left=left, right=right, vtype=BOOLEAN)

    def _membership(
        self, node: ast.Compare, left: ast.Node, pairs: frozenset[tuple[str, str]]
    ) -> ast.Node:
        if not isinstance(node.right, ast.ListLit):
            raise RuleError(
                f'expected a list such as ["a", "b"] after \'{node.op}\'', node.right.pos
            )
        items = []
        for item in node.right.items:
            checked = coerce_literal(self.visit(item), _vt(left))
            if not accepts(pairs, _vt(left), _vt(checked)):
                raise self._operand_error(node.op, pairs, left, checked)
            items.append(checked)
        right = replace(node.right, items=tuple(items), vtype=LIST)
        return replace(node, left=left, right=right, vtype=BOOLEAN)

    def _operand_error(
        self, op: str, pairs: frozenset[tuple[str, str]], left: ast.Node, right: ast.Node
    ) -> RuleError:
        lt, rt = _vt(left), _vt(right)
        if op in _TEXT_OPERATORS:
            wanted = "text or a list" if LIST in left_types(pairs) else "text"
            if lt != NULL and lt not in left_types(pairs):
                return RuleError(f"'{op}' needs {wanted} on the left, not {lt}", left.pos)
            return RuleError(f"'{op}' needs text on the right, not {rt}", right.pos)
        if lt != NULL and lt not in left_types(pairs):
            hint = "; use 'contains'" if lt == LIST else ""
            return RuleError(f"'{op}' cannot be used with {lt} values{hint}", left.pos)
        if rt != NULL and rt not in right_types(pairs):
            return RuleError(f"'{op}' cannot be used with {rt} values", right.pos)
        return RuleError(f"cannot compare {lt} with {rt}", right.pos)

    # --- functions ---------------------------------------------------------------------------

    def _visit_Call(self, node: ast.Call) -> ast.Node:
        if node.name in CHANGE_FUNCTIONS:
            return self._changed(node)
        signature = FUNCTIONS.get(node.name)
        if signature is None:
            known = list(FUNCTIONS)
            if self.scope.allow_change_refs:
                known.extend(CHANGE_FUNCTIONS)
            raise RuleError(
                f"unknown function '{node.name}'",
                node.pos,
                [f"{m}()" for m in close_matches(node.name, known)],
            )
        self._check_arity(node, signature)
        args = []
        for index, arg in enumerate(node.args):
            accepted = signature.param(index)
            checked = self.visit(arg)
            if _vt(checked) == TEXT and TEXT not in accepted:
                checked = _coerce_to_any(checked, accepted)
            vtype = _vt(checked)
            if vtype != NULL and vtype not in accepted:
                wanted = TYPE_SET_NAMES.get(accepted, " or ".join(sorted(accepted)))
                raise RuleError(
                    f"argument {index + 1} of {node.name}() must be {wanted}, not {vtype}",
                    arg.pos,
                )
            args.append(checked)
        if signature.result == COMMON:
            args[signature.common_from :] = _coerce_common(args[signature.common_from :])
        vtype = self._result_type(node, signature, args)
        return replace(node, args=tuple(args), vtype=vtype)

    def _check_arity(self, node: ast.Call, signature: Signature) -> None:
        count, low, high = len(node.args), signature.min_args, signature.max_args
        if count < low:
            wanted = f"{'at least ' if high != low else ''}{_plural(low, 'argument')}"
            raise RuleError(f"{node.name}() needs {wanted}, got {count}", node.pos)
        if high is not None and count > high:
            wanted = f"{'at most ' if high != low else ''}{_plural(high, 'argument')}"
            raise RuleError(f"{node.name}() takes {wanted}, got {count}", node.args[high].pos)

    def _result_type(self, node: ast.Call, signature: Signature, args: list[ast.Node]) -> str:
        if signature.result == SAME_AS_FIRST:
            return _vt(args[0])
        if signature.result != COMMON:
            return signature.result
        common = NULL
        for arg in args[signature.common_from :]:
            vtype = _vt(arg)
            if vtype in (NULL, common):
                continue
            if common == NULL:
                common = vtype
            elif common in NUMBERS and vtype in NUMBERS:
                common = DECIMAL
            else:
                raise RuleError(
                    f"the arguments of {node.name}() must have one type, not {common} and {vtype}",
                    arg.pos,
                )
        return common

    def _changed(self, node: ast.Call) -> ast.Node:
        if not self.scope.allow_change_refs:
            raise RuleError(
                f"{node.name}() is only available in rules that see a change, not here", node.pos
            )
        args = node.args
        if len(args) != 1 or not isinstance(args[0], ast.FieldRef) or len(args[0].path) != 1:
            raise RuleError(
                f"{node.name}() takes one field of this record, such as {node.name}(stage)",
                args[0].pos if args else node.pos,
            )
        self.uses_change = True
        return replace(node, args=(self.visit(args[0]),), vtype=BOOLEAN)

    # --- names -------------------------------------------------------------------------------

    def _resolve(
        self, path: tuple[str, ...], segment_pos: tuple[Position, ...], pos: Position
    ) -> FieldDef:
        """The field at the end of a path, following lookups; errors point at the bad segment."""

        def where(index: int) -> Position:
            return segment_pos[index] if index < len(segment_pos) else pos

        if len(path) > MAX_LOOKUP_HOPS + 1:
            raise RuleError(
                f"a path may follow at most {MAX_LOOKUP_HOPS} lookups",
                where(MAX_LOOKUP_HOPS + 1),
            )
        entity = self.scope.entity
        for index, name in enumerate(path):
            found = entity.field(name)
            if found is None:
                raise self._unknown_field(name, entity, index, where(index))
            if index == len(path) - 1:
                return found
            if found.type != "lookup" or not found.target:
                raise RuleError(
                    f"'{name}' is not a lookup, so '.{path[index + 1]}' cannot follow it",
                    where(index + 1),
                )
            target = self.scope.resolve_entity(found.target)
            if target is None:
                raise RuleError(
                    f"'{name}' looks up '{found.target}', which is not an entity", where(index)
                )
            entity = target
        raise RuleError("expected a field name", pos)

    def _unknown_field(
        self, name: str, entity: EntityDef, index: int, where: Position
    ) -> RuleError:
        names = [f.name for f in entity.all_fields]
        suggestions = close_matches(name, names)
        if index == 0:
            # `today` without parentheses, say: point at the function.
            calls = [n for n, s in FUNCTIONS.items() if s.min_args == 0]
            suggestions += [f"{m}()" for m in close_matches(name, calls)]
        owner = f" on {entity.name}" if index else ""
        return RuleError(f"unknown field '{name}'{owner}", where, suggestions)


def _value_type(found: FieldDef, pos: Position) -> str:
    vtype = found.value_kind
    if vtype not in VALUE_TYPES:
        raise RuleError(f"'{found.name}' has no value the rule language can use", pos)
    return vtype


def _vt(node: ast.Node) -> str:
    return node.vtype or NULL


def _coerce_to_any(node: ast.Node, accepted: frozenset[str]) -> ast.Node:
    """For a function argument: the first of date, datetime the text literal reads as."""
    for target in (DATE, DATETIME):
        if target in accepted:
            try:
                return coerce_literal(node, target)
            except RuleError:
                if DATETIME not in accepted or target == DATETIME:
                    raise
    return node


def _coerce_common(args: list[ast.Node]) -> list[ast.Node]:
    """Text literals beside a date or datetime read as one: min(close_date, "2024-01-01")."""
    types = {_vt(a) for a in args}
    if TEXT not in types or not types & TEMPORAL:
        return args
    target = DATETIME if DATETIME in types else DATE
    return [coerce_literal(a, target) for a in args]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def sql_compatible(checked: Checked, scope: Scope | None = None) -> str | None:
    """Why a checked expression cannot run as SQL, or None when it can.

    Old values and changed() exist only while a change is checked in Python. With the scope,
    formulas of looked-up records are found too (only the base entity's formulas compile).
    """
    stack: list[ast.Node] = [checked.node]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.OldRef):
            return f"old.{'.'.join(node.path)} is only known while a change is checked"
        if isinstance(node, ast.InputRef):
            return f"input.{'.'.join(node.path)} is only known while an action runs"
        if isinstance(node, ast.Call) and node.name in CHANGE_FUNCTIONS:
            return f"{node.name}() is only known while a change is checked"
        if isinstance(node, ast.FieldRef) and scope is not None and len(node.path) > 1:
            reason = _looked_up_formula(node.path, scope)
            if reason:
                return reason
        stack.extend(node.children())
    return None


def _looked_up_formula(path: tuple[str, ...], scope: Scope) -> str | None:
    entity: EntityDef | None = scope.entity
    for index, name in enumerate(path):
        found = entity.field(name) if entity is not None else None
        if found is None:
            return None
        if index == len(path) - 1:
            if not found.stored:
                return f"'{'.'.join(path)}' is computed on a looked-up record"
            return None
        entity = scope.resolve_entity(found.target) if found.target else None
    return None
