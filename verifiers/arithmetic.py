"""A calculator as a process verifier: are the equations written so far correct?

Math word-problem solutions state their arithmetic as ``a op b = c`` (GSM8K writes
``48/2 = <<48/2=24>>24``). This verifier finds every equation ``lhs = rhs`` whose left side is
an arithmetic expression of numbers and ``+ - * / x × ÷ ( )`` and whose right side is a number,
evaluates the left side exactly (fractions, no ``eval``) and scores

    score(text) = (#correct + prior) / (#equations + prior)

so a text with no equation scores 1 (nothing wrong yet) and each wrong equation pulls the score
down. It needs no model, judges partial solutions step by step, and knows nothing of the
reference answer: an honest process verifier for beam search on arithmetic problems.
"""

from __future__ import annotations

import ast
import operator
import re
from fractions import Fraction
from typing import Sequence

import numpy as np

from ponder.search.protocols import KINDS, check_choice
from ponder.verifiers.base import Verifier

_NUMBER = r"\d[\d,]*(?:\.\d+)?"
# an expression: numbers joined by operators (at least one operator), optional parentheses, optional $
_EXPR = rf"\(?\$?{_NUMBER}\)?(?:\s*[-+*/x×÷]\s*\(?\$?{_NUMBER}\)?)+"
_EQUATION = re.compile(rf"({_EXPR})\s*=\s*(?:<<[^>]*>>)?\s*\$?(-?{_NUMBER})(?!\s*/\s*\d)")  # "= 1/4" is no integer
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _evaluate(expression: str) -> Fraction | None:
    cleaned = expression.replace("$", "").replace(",", "").replace("×", "*").replace("÷", "/")
    cleaned = re.sub(r"(?<=[\d)\s])x(?=[\s\d(])", "*", cleaned)
    try:
        tree = ast.parse(cleaned, mode="eval")
    except SyntaxError:
        return None

    def walk(node) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return Fraction(str(node.value))
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise ValueError("not arithmetic")

    try:
        return walk(tree)
    except (ValueError, ZeroDivisionError):
        return None


def check_equations(text: str, *, rel_tol: float = 1e-4) -> tuple[int, int]:
    """(correct, total) over the equations ``expression = number`` found in ``text``."""
    correct = total = 0
    for lhs, rhs in _EQUATION.findall(text):
        value = _evaluate(lhs)
        if value is None:
            continue
        total += 1
        claimed = Fraction(rhs.replace(",", ""))
        decimals = len(rhs.split(".")[1]) if "." in rhs else 0
        rounding = Fraction(1, 2 * 10**decimals) if decimals else Fraction(0)  # "2/3 = 0.67" is right
        if abs(value - claimed) <= max(rounding, rel_tol * max(1, abs(value))):
            correct += 1
    return correct, total


class Arithmetic(Verifier):
    """Share of correct equations in the text, smoothed by ``prior``; see the module docstring."""

    def __init__(self, *, prior: float = 1.0, name: str = "arithmetic", kind: str = "process"):
        if prior < 0:
            raise ValueError(f"prior must be >= 0, got {prior}")
        self.prior = float(prior)
        self.name = name
        self.kind = check_choice("verifier kind", kind, KINDS)

    def score(self, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        out = np.empty(len(texts), dtype=np.float64)  # [B]
        for i, text in enumerate(texts):
            correct, total = check_equations(text)
            out[i] = (correct + self.prior) / (total + self.prior) if total + self.prior > 0 else 1.0
        return out


def arithmetic(*, prior: float = 1.0, name: str = "arithmetic", kind: str = "process") -> Arithmetic:
    """The calculator process verifier (see :class:`Arithmetic`)."""
    return Arithmetic(prior=prior, name=name, kind=kind)
