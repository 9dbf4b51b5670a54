"""A safe arithmetic calculator: parse with `ast`, walk an allow-list of nodes, never eval/exec.

Agent text is untrusted, so every way to make arithmetic expensive has a bound that is checked
*before* the expensive step runs:
  * length (`MAX_EXPRESSION_CHARS`) and bracket depth, checked on the raw text, so the parser never
    sees a thousand-deep nesting;
  * AST size (`MAX_NODES`) and depth (`MAX_DEPTH`);
  * number size: every literal and intermediate value stays within `MAX_MAGNITUDE`, and a power is
    refused when its result would not (estimated from logarithms, so 9**9**9 is never computed);
  * exponent size (`MAX_EXPONENT`) and a wall-clock budget (`TIME_LIMIT_S`) checked at every node.
Names are limited to a few math functions and constants; attributes, subscripts, comprehensions,
lambdas, strings and every other node are refused with a message naming what is allowed.
"""

from __future__ import annotations

import ast
import math
import operator
import time
from collections.abc import Callable
from typing import Any

from agentrl.core.tools import ToolError, tool

from .numbers import format_number

MAX_EXPRESSION_CHARS = 300
MAX_BRACKET_DEPTH = 20
MAX_NODES = 200
MAX_DEPTH = 40
MAX_MAGNITUDE = 1e100
MAX_EXPONENT = 10_000
MAX_FUNCTION_ARGS = 20
TIME_LIMIT_S = 0.1

Number = int | float

_BINARY: dict[type[ast.operator], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv),
    ast.Mod: ("%", operator.mod),
    ast.Pow: ("**", operator.pow),
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
# Operators a model may plausibly reach for, with the reason they are refused.
_REFUSED_BINARY = {
    ast.BitXor: "'^' is bitwise XOR in Python, not a power; write powers with **",
    ast.MatMult: "'@' is not arithmetic",
    ast.BitAnd: "'&' is a bitwise operator; only + - * / // % ** are allowed",
    ast.BitOr: "'|' is a bitwise operator; only + - * / // % ** are allowed",
    ast.LShift: "'<<' is a bitwise operator; only + - * / // % ** are allowed",
    ast.RShift: "'>>' is a bitwise operator; only + - * / // % ** are allowed",
}


def _log(x: Number, base: Number = math.e) -> float:
    if x <= 0:
        raise ToolError(f"log() needs a positive number, got {format_number(x)}")
    if base <= 0 or base == 1:
        raise ToolError(f"log() base must be positive and not 1, got {format_number(base)}")
    return math.log(x, base)


def _sqrt(x: Number) -> float:
    if x < 0:
        raise ToolError(f"sqrt() needs a non-negative number, got {format_number(x)}")
    return math.sqrt(x)


def _round(x: Number, ndigits: Number = 0) -> Number:
    if not isinstance(ndigits, int) or not -20 <= ndigits <= 20:
        raise ToolError("round()'s second argument must be a whole number from -20 to 20")
    return round(x, ndigits) if ndigits else round(x)


def _minmax(fn: Callable[..., Number]) -> Callable[..., Number]:
    def call(*args: Number) -> Number:
        if not args:
            raise ToolError(f"{fn.__name__}() needs at least one number")
        return fn(args)

    return call


FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs,
    "round": _round,
    "min": _minmax(min),
    "max": _minmax(max),
    "sqrt": _sqrt,
    "log": _log,
    "log10": lambda x: _log(x, 10),
    "exp": math.exp,
    "floor": math.floor,
    "ceil": math.ceil,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
ALLOWED = "numbers, + - * / // % ** and parentheses, constants pi and e, functions " + ", ".join(FUNCTIONS)


def _check_number(x: Any, what: str = "result") -> Number:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ToolError(f"the {what} is not a real number (got {type(x).__name__}); {ALLOWED}")
    if isinstance(x, float) and not math.isfinite(x):
        raise ToolError(f"the {what} is not a finite number (overflow or undefined); numbers must stay within ±1e100")
    if abs(x) > MAX_MAGNITUDE:
        raise ToolError(f"the {what} is larger than the limit of 1e100 in magnitude")
    return x


def _power(a: Number, b: Number) -> Number:
    if abs(b) > MAX_EXPONENT:
        raise ToolError(f"exponent {format_number(b)} is too large; exponents must be within ±{MAX_EXPONENT}")
    if a == 0 and b < 0:
        raise ToolError("0 cannot be raised to a negative power (division by zero)")
    if a < 0 and not float(b).is_integer():
        raise ToolError("a negative number cannot be raised to a fractional power (the result is not real)")
    # Estimate the size first: |a|**b has about b*log10|a| digits. This is what keeps 9**9**9 from running.
    if a != 0 and b * math.log10(abs(a)) > math.log10(MAX_MAGNITUDE):
        raise ToolError(f"{format_number(a)} ** {format_number(b)} would exceed the limit of 1e100 in magnitude")
    try:
        return a**b
    except OverflowError:
        raise ToolError("the power overflowed; numbers must stay within ±1e100") from None


class _Evaluator:
    def __init__(self) -> None:
        self.deadline = time.perf_counter() + TIME_LIMIT_S

    def eval(self, node: ast.AST, depth: int = 0) -> Number:
        if depth > MAX_DEPTH:
            raise ToolError(f"the expression is nested too deeply (limit {MAX_DEPTH} levels)")
        if time.perf_counter() > self.deadline:
            raise ToolError(f"the expression took longer than {TIME_LIMIT_S}s to evaluate")
        if isinstance(node, ast.Expression):
            return self.eval(node.body, depth + 1)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise ToolError(f"{node.value!r} is not a number; {ALLOWED}")
            return _check_number(node.value, "number literal")
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            if node.id in FUNCTIONS:
                raise ToolError(f"'{node.id}' is a function; call it like {node.id}(2)")
            raise ToolError(f"unknown name '{node.id[:40]}'; {ALLOWED}")
        if isinstance(node, ast.UnaryOp):
            if type(node.op) not in _UNARY:
                raise ToolError(f"operator {type(node.op).__name__} is not allowed; {ALLOWED}")
            return _check_number(_UNARY[type(node.op)](self.eval(node.operand, depth + 1)))
        if isinstance(node, ast.BinOp):
            op = type(node.op)
            if op in _REFUSED_BINARY:
                raise ToolError(_REFUSED_BINARY[op])
            if op not in _BINARY:
                raise ToolError(f"operator {op.__name__} is not allowed; {ALLOWED}")
            left = self.eval(node.left, depth + 1)
            right = self.eval(node.right, depth + 1)
            symbol, fn = _BINARY[op]
            if op is ast.Pow:
                return _check_number(_power(left, right))
            if op in (ast.Div, ast.FloorDiv, ast.Mod) and right == 0:
                raise ToolError(f"division by zero in '{symbol}'")
            return _check_number(fn(left, right))
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise ToolError(
                    f"only plain function names can be called (no methods or attributes); allowed functions: {', '.join(FUNCTIONS)}"
                )
            if node.func.id not in FUNCTIONS:
                raise ToolError(f"unknown function '{node.func.id[:40]}'; allowed functions: {', '.join(FUNCTIONS)}")
            if node.keywords:
                raise ToolError(f"{node.func.id}() takes positional arguments only")
            if len(node.args) > MAX_FUNCTION_ARGS:
                raise ToolError(f"{node.func.id}() takes at most {MAX_FUNCTION_ARGS} arguments")
            args = [self.eval(a, depth + 1) for a in node.args]
            try:
                return _check_number(FUNCTIONS[node.func.id](*args))
            except TypeError:
                raise ToolError(f"wrong number of arguments for {node.func.id}()") from None
            except (ValueError, OverflowError) as exc:
                raise ToolError(f"{node.func.id}() failed: {exc}") from None
        if isinstance(node, (ast.Tuple, ast.List)):
            raise ToolError("commas are not allowed outside function calls; write 1000 rather than 1,000")
        if isinstance(node, ast.Compare):
            raise ToolError(f"comparisons are not allowed; {ALLOWED}")
        raise ToolError(f"{type(node).__name__} is not allowed in an expression; {ALLOWED}")


def evaluate(expression: str) -> Number:
    """Evaluate arithmetic safely. Raises ToolError with the reason for anything outside the allow-list."""
    if not isinstance(expression, str):
        raise ToolError(f"expression must be a string, got {type(expression).__name__}")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression has {len(expression)} characters; at most {MAX_EXPRESSION_CHARS} are allowed")
    if not expression.strip():
        raise ToolError(f"the expression is empty; {ALLOWED}")
    # Bracket depth on the raw text: Python's own parser recurses on nesting, so refuse deep nesting first.
    depth = deepest = 0
    for ch in expression:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    if deepest > MAX_BRACKET_DEPTH:
        raise ToolError(f"the expression nests brackets {deepest} deep; at most {MAX_BRACKET_DEPTH} are allowed")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"the expression is not valid arithmetic ({exc.msg}); {ALLOWED}") from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ToolError(f"the expression could not be parsed ({type(exc).__name__}); {ALLOWED}") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise ToolError(f"the expression has {nodes} parts; at most {MAX_NODES} are allowed")
    try:
        return _Evaluator().eval(tree)
    except RecursionError:
        raise ToolError(f"the expression is nested too deeply (limit {MAX_DEPTH} levels)") from None


@tool
def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression and return the number.

    Supports + - * / // % ** (power), parentheses, pi, e and the functions abs, round, min, max, sqrt,
    log (natural, or log(x, base)), log10, exp, floor, ceil, sin, cos, tan. Write powers with ** and
    numbers without thousands separators.

    Args:
        expression: the arithmetic to evaluate, e.g. "(3 + 4) * 2 ** 10 / 7"
    """
    return format_number(evaluate(expression))
