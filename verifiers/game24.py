r"""Learned heuristics for the Game of 24 (:mod:`ponder.models.game24`): a value and a policy.

Two small MLPs, trained by :mod:`ponder.verifiers.game24_train` on the states reachable from the
puzzles of rows 0-799 of ``game24.csv`` (never rows 800 onward, which benchmarks use), labelled by
the exact :func:`~ponder.models.game24.solvable`. Inference is pure numpy: no torch needed.

:class:`Game24Value` (``"game24_value"``, kind ``"process"``)
    ``P(this multiset of numbers can still reach 24)``. A candidate is a state's numbers: a tuple
    of :class:`~fractions.Fraction` (ints are accepted), an object with a ``.world`` or
    ``.numbers`` attribute holding one (a :class:`~ponder.search.protocols.ToolState`), or a string
    such as ``"3 8/3 8"``. One number left is an exact fact: 24 scores 1, anything else ``EPS``.

:class:`Game24Policy` (``"game24_policy"``, kind ``"process"``)
    ``P(the state after this call is solvable)``, judged *before* the call runs. A candidate is a
    pair ``(numbers, call)``: ``numbers`` as for the value, ``call`` a tuple ``(op, a, b)`` meaning
    ``op(a, b)`` or an object with ``.tool`` and ``.args`` (a :class:`~ponder.search.protocols.Call`).
    The policy's features (:func:`call_features`) see only the op, ``a``, ``b`` and the other
    remaining numbers, each number encoded on its own by :func:`number_features`: no arithmetic
    combination of ``a`` and ``b`` (nor anything amounting to the call's result) is ever computed;
    the network has to learn what the call gives. The weights may hold several such networks
    (members trained with different seeds); their logits are averaged. A call that is illegal in the state (an operand
    that is not among the numbers, an unknown tool) raises ``ValueError``; ``div`` by zero
    scores ``EPS``.

Each weights file records the feature version it was trained on (:data:`FEATURE_VERSIONS`; the
shipped value uses version 1, the shipped policy version 2), and the verifier encodes numbers the
same way.

Scores are probabilities clipped to ``[EPS, 1]`` so ``-log(score)`` is finite (an A* cost). Each
network's logit is divided by a temperature per number of numbers in the state (stored with the
weights, chosen on development splits inside the training rows): the networks are over-confident
on states unlike the training ones, and an A* over calls compares probabilities across depths.
Weights load lazily from this package's ``weights/`` folder (``game24_value.npz``,
``game24_policy.npz``; the training report is ``weights/game24_report.json``), or from
``weights=`` (a file path). Scoring is batched: per-number first-layer projections are cached, so a
batch costs one gather and a few small matrix products.
"""

from __future__ import annotations

import json
import math
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ponder.verifiers.base import Verifier

__all__ = [
    "EPS",
    "WEIGHTS",
    "Game24Value",
    "Game24Policy",
    "game24_value",
    "game24_policy",
    "number_features",
    "number_dim",
    "value_dim",
    "policy_dim",
    "FEATURE_VERSIONS",
    "state_features",
    "call_features",
    "as_numbers",
    "as_call",
]

EPS = 1e-4
WEIGHTS = Path(__file__).parent / "weights"
TRAIN_COMMAND = "python -m ponder.verifiers.game24_train"
OPS = ("add", "sub", "mul", "div")
FEATURE_VERSION = 2  # what new weights are trained with; FEATURE_VERSIONS lists what loads
FEATURE_VERSIONS = (1, 2)
MAX_NUMBERS = 4  # states of 2-4 numbers go through the networks

# ---------------------------------------------------------------------------------------------
# Features: every number is encoded on its own

_PRIMES = (2, 3, 5, 7, 11, 13)
_MAX_NUM = 26  # numerator one-hot 0..26, then "larger"
_MAX_DEN = 12  # denominator one-hot 1..12, then "larger"
_LOG24 = math.log(24.0)


def _exponents(n: int) -> tuple[list[int], int]:
    """Exponents of the small primes in ``n > 0`` and what is left over."""
    out = []
    for p in _PRIMES:
        e = 0
        while n % p == 0:
            n //= p
            e += 1
        out.append(e)
    return out, n


_RESIDUES = (3, 4, 5, 7, 8, 9)  # version 2: one-hot numerator residues
_BITS = 10  # version 2: the numerator's low binary digits, then "1024 or more"


def _number_row(x: Fraction, version: int) -> list[float]:
    num, den = abs(x.numerator), x.denominator
    f = float(x)
    row = [
        1.0,  # present (padding rows are all zero)
        float(x < 0),
        float(x == 0),
        float(den == 1),
        max(-4.0, min(4.0, f / 24.0)),
        math.copysign(math.log1p(abs(f)) / math.log(25.0), f),
        max(-3.0, min(3.0, math.log(abs(f)) / _LOG24)) if num else 0.0,
        math.log(num) / _LOG24 if num else 0.0,
        math.log(den) / _LOG24,
        float(x == 24),
        max(-4.0, min(4.0, 24.0 / f)) if num else 0.0,
        float(num != 0 and (24 * den) % num == 0),  # 24 / x is whole
    ]
    if num:
        e_num, left_num = _exponents(num)
        e_den, left_den = _exponents(den)
        row += [(p - q) / 3.0 for p, q in zip(e_num, e_den)]
        row.append(float(left_num > 1 or left_den > 1))
    else:
        row += [0.0] * (len(_PRIMES) + 1)
    hot_num = [0.0] * (_MAX_NUM + 2)
    hot_num[min(num, _MAX_NUM + 1)] = 1.0
    hot_den = [0.0] * (_MAX_DEN + 1)
    hot_den[min(den, _MAX_DEN + 1) - 1] = 1.0
    row += hot_num + hot_den
    if version >= 2:  # numbers past 96 told apart: wider linear scales, residues, binary digits
        row += [max(-16.0, min(16.0, f / 24.0)), max(-4.0, min(4.0, f / 96.0))]
        for m in _RESIDUES:
            hot = [0.0] * m
            hot[num % m] = 1.0
            row += hot
        row += [float(num >> i & 1) for i in range(_BITS)] + [float(num >> _BITS > 0)]
    return row


def _check_version(version: int) -> int:
    if version not in FEATURE_VERSIONS:
        raise ValueError(f"unknown Game of 24 feature version {version!r}; the versions are {', '.join(map(str, FEATURE_VERSIONS))}")
    return version


_DIMS = {v: len(_number_row(Fraction(1), v)) for v in FEATURE_VERSIONS}


def number_dim(version: int = FEATURE_VERSION) -> int:
    """The length of :func:`number_features` in ``version``."""
    return _DIMS[_check_version(version)]


def value_dim(version: int = FEATURE_VERSION) -> int:
    """The length of :func:`state_features` in ``version``."""
    return MAX_NUMBERS + MAX_NUMBERS * number_dim(version)


def policy_dim(version: int = FEATURE_VERSION) -> int:
    """The length of :func:`call_features` in ``version``."""
    return 7 + MAX_NUMBERS * number_dim(version)


def number_features(x: Fraction | int, *, version: int = FEATURE_VERSION) -> np.ndarray:
    """The encoding of one number on its own: ``[number_dim(version)]`` float32.

    Version 1: presence, sign, zero, whole-or-not, ``x/24``, signed ``log(1+|x|)``, ``log|x|``, log
    numerator and denominator, ``x == 24``, ``24/x``, whether ``24/x`` is whole, the exponents of 2,
    3, 5, 7, 11 and 13, one-hots of the numerator (0-26) and the denominator (1-12), clipped.
    Version 2 appends what tells large numbers apart (version 1 sees 121 and 120 almost alike, so
    a policy cannot find ``sub(121, 1)``): ``x/24`` clipped at 16, ``x/96`` clipped at 4, one-hots
    of the numerator mod 3, 4, 5, 7, 8 and 9, and the numerator's 10 low bits with a ">= 1024" flag.
    Every feature is a function of ``x`` alone.
    """
    return np.asarray(_number_row(Fraction(x), _check_version(version)), dtype=np.float32)


def state_features(numbers: Sequence[Fraction], *, version: int = FEATURE_VERSION) -> np.ndarray:
    """The value's input for one state of 1-4 numbers: ``[value_dim(version)]`` float32.

    A one-hot of how many numbers are left, then the numbers in ascending order, each encoded by
    :func:`number_features`, padded with zero rows to four. (The value network pools the number
    blocks by a sum, so their order does not matter.)
    """
    numbers = sorted(Fraction(x) for x in numbers)
    if not 1 <= len(numbers) <= MAX_NUMBERS:
        raise ValueError(f"the value network covers states of 1-{MAX_NUMBERS} numbers, got {len(numbers)}")
    count = np.zeros(MAX_NUMBERS, dtype=np.float32)
    count[len(numbers) - 1] = 1.0
    pad = [np.zeros(number_dim(version), np.float32)] * (MAX_NUMBERS - len(numbers))
    return np.concatenate([count] + [number_features(x, version=version) for x in numbers] + pad)


def call_features(op: str, a: Fraction, b: Fraction, rest: Sequence[Fraction], *, version: int = FEATURE_VERSION) -> np.ndarray:
    """The policy's input for the call ``op(a, b)`` with ``rest`` the other remaining numbers.

    ``[policy_dim(version)]`` float32: the op one-hot, a one-hot of how many numbers the state
    has, then :func:`number_features` of ``a``, of ``b`` and of the rest in ascending order (padded
    to two). Each number is encoded alone: nothing here combines ``a`` and ``b``. ``add`` and
    ``mul`` are symmetric, so their operands are put in ascending order first.
    """
    a, b = Fraction(a), Fraction(b)
    if op not in OPS:
        raise ValueError(f"unknown tool {op!r}; the tools are {', '.join(OPS)}")
    rest = sorted(rest)
    if len(rest) > MAX_NUMBERS - 2:
        raise ValueError(f"the policy network covers states of 2-{MAX_NUMBERS} numbers, got {len(rest) + 2}")
    if op in ("add", "mul") and b < a:
        a, b = b, a
    head = np.zeros(7, dtype=np.float32)
    head[OPS.index(op)] = 1.0
    head[4 + len(rest)] = 1.0
    blocks = [number_features(x, version=version) for x in (a, b, *rest)]
    blocks += [np.zeros(number_dim(version), np.float32)] * (MAX_NUMBERS - 2 - len(rest))
    return np.concatenate([head] + blocks)


# ---------------------------------------------------------------------------------------------
# Candidates


def _parse_number(x: Any) -> Fraction:
    if isinstance(x, Fraction):
        return x
    if isinstance(x, bool):
        raise TypeError("a bool is not a number")
    if isinstance(x, int):
        return Fraction(x)
    if isinstance(x, str):
        return Fraction(x.strip())
    if isinstance(x, float):
        if not math.isfinite(x):
            raise ValueError(f"{x} is not a finite number")
        return Fraction(x).limit_denominator(10**6)
    if hasattr(x, "numerator") and hasattr(x, "denominator"):  # numpy ints and the like
        return Fraction(int(x.numerator), int(x.denominator))
    raise TypeError(f"{type(x).__name__} is not a number")


def as_numbers(candidate: Any) -> tuple:
    """A Game of 24 state (sorted tuple of Fractions) from a tuple/list of numbers, an object with
    ``.world`` or ``.numbers``, or a string such as ``"3 8/3 8"``.

    Raises:
        ValueError: anything else (the message shows the candidate and the accepted formats).
    """
    value = candidate
    for attr in ("world", "numbers"):
        if not isinstance(value, (tuple, list, str)) and hasattr(value, attr):
            value = getattr(value, attr)
    try:
        if isinstance(value, str):
            items = value.replace(",", " ").split()
        elif isinstance(value, (tuple, list)):
            items = value
        else:
            raise TypeError(f"a {type(value).__name__}")
        numbers = tuple(sorted(_parse_number(x) for x in items))
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise ValueError(
            f"a Game of 24 candidate is the remaining numbers (a tuple of Fractions, an object with .world "
            f"or .numbers, or a string like '3 8/3 8'), got {candidate!r:.120} ({exc})"
        ) from None
    if not numbers:
        raise ValueError(f"a Game of 24 candidate is the remaining numbers, at least one, got {candidate!r:.120}")
    return numbers


def as_call(call: Any) -> tuple[str, Fraction, Fraction]:
    """``(op, a, b)`` from a tuple ``(op, a, b)`` or an object with ``.tool`` and ``.args``."""
    try:
        if hasattr(call, "tool") and hasattr(call, "args"):
            op, args = call.tool, tuple(call.args)
        else:
            op, *args = call
        a, b = args
        op = str(op)
        return op, _parse_number(a), _parse_number(b)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"a Game of 24 call is (op, a, b) or an object with .tool and .args = (a, b), got {call!r:.120} ({exc})") from None


# ---------------------------------------------------------------------------------------------
# The networks, in numpy
#
# value:  V(S) = sigmoid(mlp(state_features(S)))                       (numbers in ascending order)
# policy: e = psi(op, a, b)                                              (the call's embedding)
#         P(op, a, b, rest) = sigmoid(head([e, rest[0], rest[1], onehot(|rest|)]))
#
# ReLU MLPs. psi sees only the op and the two operands' own features; during training a linear
# decoder (not shipped) had to recover the features of the call's result from e - an auxiliary
# *target*, never an input - which is what teaches psi the arithmetic. The first layers are
# evaluated as sums of per-number projections cached by number, so a batch costs one gather and
# a few small matrix products.


def _mlp(h: np.ndarray, layers, *, final_relu: bool) -> np.ndarray:
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if final_relu or i < len(layers) - 1:
            np.maximum(h, 0.0, out=h)
    return h


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logit, dtype=np.float64), -60.0, 60.0)))


def load_weights(path: str | Path, kind: str) -> tuple[dict, dict[str, list]]:
    """``(meta, {part: [(W, b), ...]})`` from a weights file of ``kind`` ("value" or "policy").

    Raises:
        FileNotFoundError: no file (the message names the training command).
        ValueError: a file of another kind or of an unknown feature version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Game of 24 {kind} weights at {path}; train them with `{TRAIN_COMMAND}` (see its --help)")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("kind") != kind or meta.get("feature_version") not in FEATURE_VERSIONS:
            raise ValueError(
                f"{path} holds {meta.get('kind')!r} weights of feature version {meta.get('feature_version')}, "
                f"expected {kind!r} weights of version {' or '.join(map(str, FEATURE_VERSIONS))}; retrain with `{TRAIN_COMMAND}`"
            )
        parts = {part: [(z[f"{part}.{i}.W"].astype(np.float32), z[f"{part}.{i}.b"].astype(np.float32)) for i in range(count)]
                 for part, count in meta["parts"].items()}
    return meta, parts


class _NumberCache:
    """Per-number rows ``number_features(x, version=version) @ W`` for a fixed ``W`` (row 0:
    padding, zeros), with each row's value as a float (``key``) to order numbers without Fraction
    comparisons."""

    def __init__(self, w: np.ndarray, version: int):
        self.w = w
        self.version = version
        self.index: dict[Fraction, int] = {}
        self.key: list[float] = [0.0]
        self.array = np.zeros((256, w.shape[1]), dtype=np.float32)
        self.size = 1
        self.lock = threading.Lock()

    def rows(self, numbers: Sequence[Fraction]) -> list[int]:
        index = self.index
        try:
            return [index[x] for x in numbers]
        except KeyError:
            pass
        with self.lock:
            missing = [x for x in dict.fromkeys(numbers) if x not in self.index]
            values = np.stack([number_features(x, version=self.version) for x in missing]) @ self.w
            need = self.size + len(missing)
            if need > len(self.array):
                grown = np.zeros((max(need, 2 * len(self.array)), self.array.shape[1]), dtype=np.float32)
                grown[: self.size] = self.array[: self.size]
                self.array = grown
            self.array[self.size: need] = values
            self.key.extend(float(x) for x in missing)
            for i, x in enumerate(missing):
                self.index[x] = self.size + i
            self.size = need
        return [index[x] for x in numbers]


def _fast_numbers(candidate: Any) -> Any:
    """A tuple of Fractions as it is (the game's states); anything else through :func:`as_numbers`."""
    if type(candidate) is tuple and candidate and all(type(x) is Fraction for x in candidate):
        return candidate
    return as_numbers(candidate)


def _fast_call(call: Any) -> tuple:
    if type(call) is tuple and len(call) == 3 and type(call[1]) is Fraction and type(call[2]) is Fraction and type(call[0]) is str:
        return call
    return as_call(call)


class _Learned(Verifier):
    kind = "process"
    _file = ""
    _meta_kind = ""

    def __init__(self, *, weights: str | Path | None = None, name: str | None = None):
        self.weights = Path(weights) if weights is not None else WEIGHTS / self._file
        if name is not None:
            self.name = name
        self._parts: dict | None = None
        self._meta: dict | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> dict:
        if self._parts is None:
            with self._lock:
                if self._parts is None:
                    meta, parts = load_weights(self.weights, self._meta_kind)
                    self._pending_meta = meta
                    self._version = meta["feature_version"]
                    self._dim = number_dim(self._version)
                    self._setup(parts)
                    self._meta = meta
                    self._parts = parts
        return self._parts

    def _setup(self, parts: dict) -> None:
        raise NotImplementedError

    @property
    def feature_version(self) -> int:
        """The feature version the weights were trained on (see :func:`number_features`)."""
        self._ensure()
        return self._version

    @property
    def meta(self) -> dict:
        """What the weights file says of its training (sizes, seed, options)."""
        self._ensure()
        return dict(self._meta)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} kind={self.kind!r} weights={str(self.weights)!r}>"


def _temperatures(meta: dict) -> np.ndarray:
    """Per number of numbers in the state (index 0-4), the temperature dividing the logit."""
    out = np.ones(MAX_NUMBERS + 1, dtype=np.float32)
    for n, t in (meta.get("temperature") or {}).items():
        out[int(n)] = float(t)
    return out


def _part(name: str, member: int) -> str:
    """The weights file's name of a network part: ``psi``, ``head`` for member 0, ``psi@1``, ... after."""
    return name if member == 0 else f"{name}@{member}"


def _members(parts: dict) -> int:
    """How many members a policy's parts hold (``psi``, ``psi@1``, ...)."""
    m = 1
    while _part("psi", m) in parts:
        m += 1
    return m


def _slot_blocks(w0: np.ndarray, start: int, slots: int, dim: int) -> np.ndarray:
    """The first-layer rows of ``slots`` consecutive number blocks, side by side: [D, slots * H]."""
    return np.concatenate([w0[start + s * dim: start + (s + 1) * dim] for s in range(slots)], axis=1)


class Game24Value(_Learned):
    """``P(the state's numbers can still reach 24)``; see the module docstring.

    Args:
        weights: an ``.npz`` file from :mod:`ponder.verifiers.game24_train` (default: the
            package's ``weights/game24_value.npz``).
        name: the verifier's name (default ``"game24_value"``).
    """

    name = "game24_value"
    _file = "game24_value.npz"
    _meta_kind = "value"

    def _setup(self, parts: dict) -> None:
        self._temperature = _temperatures(self._pending_meta)
        w0 = parts["mlp"][0][0]
        self._count = w0[:MAX_NUMBERS]
        self._hidden = w0.shape[1]
        self._cache = _NumberCache(_slot_blocks(w0, MAX_NUMBERS, MAX_NUMBERS, self._dim), self._version)

    def score(self, prompts: Sequence[Any], candidates: Sequence[Any]) -> np.ndarray:
        return self.score_numbers([_fast_numbers(c) for c in candidates])

    def score_numbers(self, states: Sequence[Sequence[Fraction]]) -> np.ndarray:
        """Scores of parsed states (tuples of Fractions, in any order).               # [B]"""
        out = np.empty(len(states), dtype=np.float64)
        items, flat, sizes = [], [], []
        for i, numbers in enumerate(states):
            n = len(numbers)
            if n == 1:
                out[i] = 1.0 if numbers[0] == 24 else EPS
                continue
            if not 1 <= n <= MAX_NUMBERS:
                raise ValueError(f"the Game of 24 value covers states of 1-{MAX_NUMBERS} numbers, got {n}: {tuple(numbers)!r:.120}")
            items.append(i)
            flat.extend(numbers)
            sizes.append(n)
        if items:
            out[items] = _sigmoid(self._logits(flat, sizes))
        return np.clip(out, EPS, 1.0)

    def _logits(self, flat: list, sizes: list[int]) -> np.ndarray:
        """Logits of states given as their numbers one state after another (any order within a
        state: they are put in ascending order here) and their sizes."""
        parts = self._ensure()
        cache, hidden = self._cache, self._hidden
        sizes = np.asarray(sizes, dtype=np.intp)
        rows = np.asarray(cache.rows(flat), dtype=np.intp)
        mask = np.arange(MAX_NUMBERS) < sizes[:, None]
        padded = np.zeros((len(sizes), MAX_NUMBERS), dtype=np.intp)  # row 0 of the cache: zeros
        keys = np.full((len(sizes), MAX_NUMBERS), np.inf)
        padded[mask] = rows
        keys[mask] = np.asarray(cache.key)[rows]
        padded = np.take_along_axis(padded, np.argsort(keys, axis=1, kind="stable"), axis=1)  # ascending, padding last
        table = cache.array
        h = self._count[sizes - 1] + parts["mlp"][0][1]
        for s in range(MAX_NUMBERS):
            h += table[padded[:, s], s * hidden: (s + 1) * hidden]
        np.maximum(h, 0.0, out=h)
        return _mlp(h, parts["mlp"][1:], final_relu=False)[:, 0] / self._temperature[sizes]

    def forward_features(self, x: np.ndarray) -> np.ndarray:
        """Reference path: probabilities from :func:`state_features` rows ``[B, value_dim(self.feature_version)]``."""
        x = np.asarray(x, dtype=np.float32)
        sizes = np.argmax(x[:, :MAX_NUMBERS], axis=1) + 1
        return _sigmoid(_mlp(x, self._ensure()["mlp"], final_relu=False)[:, 0] / self._temperature[sizes])


class Game24Policy(_Learned):
    """``P(the state after the call is solvable)``, without running the call; see the module docstring.

    Args:
        weights: an ``.npz`` file from :mod:`ponder.verifiers.game24_train` (default: the
            package's ``weights/game24_policy.npz``).
        name: the verifier's name (default ``"game24_policy"``).
    """

    name = "game24_policy"
    _file = "game24_policy.npz"
    _meta_kind = "policy"

    def _setup(self, parts: dict) -> None:
        self._temperature = _temperatures(self._pending_meta)
        self._members = []  # per member: (psi layers, head layers, psi's op rows, head's e rows, head's count rows, column offset)
        blocks, offset = [], 0
        for m in range(_members(parts)):
            psi, head = parts[_part("psi", m)], parts[_part("head", m)]
            psi0, head0 = psi[0][0], head[0][0]  # psi: op(4), a, b; head: e, rest0, rest1, count(3)
            e = psi[-1][0].shape[1]
            self._hp, self._hh = psi0.shape[1], head0.shape[1]
            self._members.append((psi, head, psi0[: len(OPS)], head0[:e], head0[e + 2 * self._dim:], offset))
            # per number: its rows as a and as b in psi's first layer, as rest[0] and rest[1] in the head's
            blocks += [_slot_blocks(psi0, len(OPS), 2, self._dim), _slot_blocks(head0, e, 2, self._dim)]
            offset += 2 * (self._hp + self._hh)
        self._cache = _NumberCache(np.concatenate(blocks, axis=1), self._version)

    @property
    def members(self) -> int:
        """How many networks the weights hold (their logits are averaged)."""
        self._ensure()
        return len(self._members)

    def score(self, prompts: Sequence[Any], candidates: Sequence[Any]) -> np.ndarray:
        pairs, parsed = [], {}
        for c in candidates:
            if isinstance(c, (str, bytes)) or not isinstance(c, Sequence) or len(c) != 2:
                raise ValueError(f"a Game of 24 policy candidate is a pair (numbers, call), got {c!r:.120}")
            state, call = c
            numbers = parsed.get(id(state))  # the candidates keep every state alive: ids are not reused
            if numbers is None:
                numbers = parsed[id(state)] = _fast_numbers(state)
            pairs.append((numbers, _fast_call(call)))
        return self.score_calls(pairs)

    def score_calls(self, pairs: Sequence[tuple]) -> np.ndarray:
        """Scores of parsed ``(numbers, (op, a, b))`` pairs (numbers in any order).   # [B]"""
        self._ensure()
        cache = self._cache
        key = cache.key
        out = np.full(len(pairs), EPS, dtype=np.float64)
        items, ops, rows, rest_sizes = [], [], [], []
        state_rows: dict[int, list[int]] = {}
        op_index = {op: i for i, op in enumerate(OPS)}
        for i, (numbers, (op, a, b)) in enumerate(pairs):
            k = op_index.get(op)
            if k is None:
                raise ValueError(f"unknown tool {op!r} in a Game of 24 call; the tools are {', '.join(OPS)}")
            srows = state_rows.get(id(numbers))
            if srows is None:
                if len(numbers) > MAX_NUMBERS:
                    raise ValueError(f"the Game of 24 policy covers states of 2-{MAX_NUMBERS} numbers, got {len(numbers)}")
                srows = state_rows[id(numbers)] = cache.rows(numbers)
            rest = list(srows)
            try:
                ra, rb = cache.index[a], cache.index[b]
                rest.remove(ra)
                rest.remove(rb)
            except (KeyError, ValueError):
                raise ValueError(f"{op}({a}, {b}) is not a legal call in the state {tuple(numbers)!r:.120}: an operand is not among the numbers") from None
            if k == 3 and key[rb] == 0.0:
                continue  # division by zero: no state after the call, it cannot reach 24
            if k in (0, 2) and key[rb] < key[ra]:  # add, mul: operands in ascending order
                ra, rb = rb, ra
            if len(rest) == 2 and key[rest[1]] < key[rest[0]]:
                rest.reverse()
            items.append(i)
            ops.append(k)
            rows.append(ra)
            rows.append(rb)
            rows.extend(rest)
            rest_sizes.append(len(rest))
        if items:
            out[items] = _sigmoid(self._logits_rows(ops, rows, rest_sizes))
        return np.clip(out, EPS, 1.0)

    def _logits(self, ops: list[int], flat: list, rest_sizes: list[int]) -> np.ndarray:
        """Logits from op indices and numbers ``a, b, *rest`` call after call (add/mul operands
        and the rest in ascending order), with the rest's sizes."""
        self._ensure()
        return self._logits_rows(ops, self._cache.rows(flat), rest_sizes)

    def _logits_rows(self, ops: list[int], rows: list[int], rest_sizes: list[int]) -> np.ndarray:
        hp, hh = self._hp, self._hh
        n = len(ops)
        sizes = np.asarray(rest_sizes, dtype=np.intp)
        padded = np.zeros((n, MAX_NUMBERS), dtype=np.intp)  # a, b, rest[0], rest[1]; 0 = padding
        padded[np.arange(MAX_NUMBERS) < (sizes + 2)[:, None]] = rows
        table = self._cache.array
        ops = np.asarray(ops, dtype=np.intp)
        logit = np.zeros(n, dtype=np.float32)
        for psi, head, psi_op, head_e, head_count, o in self._members:
            h = psi_op[ops] + table[padded[:, 0], o: o + hp] + table[padded[:, 1], o + hp: o + 2 * hp] + psi[0][1]
            np.maximum(h, 0.0, out=h)
            e = _mlp(h, psi[1:], final_relu=True)  # [B, E]: the call's embedding
            h = e @ head_e + head_count[sizes] + head[0][1]
            h += table[padded[:, 2], o + 2 * hp: o + 2 * hp + hh]
            h += table[padded[:, 3], o + 2 * hp + hh: o + 2 * (hp + hh)]
            np.maximum(h, 0.0, out=h)
            logit += _mlp(h, head[1:], final_relu=False)[:, 0]
        return logit / len(self._members) / self._temperature[sizes + 2]

    def forward_features(self, x: np.ndarray) -> np.ndarray:
        """Reference path: probabilities from :func:`call_features` rows ``[B, policy_dim(self.feature_version)]``:
        the network sees nothing but those features."""
        self._ensure()
        x = np.asarray(x, dtype=np.float32)
        op, count, blocks = x[:, : len(OPS)], x[:, len(OPS): 7], x[:, 7:]
        d = self._dim
        a, b, rest = blocks[:, :d], blocks[:, d: 2 * d], blocks[:, 2 * d:]
        logit = 0.0
        for psi, head, *_ in self._members:
            e = _mlp(np.concatenate([op, a, b], axis=1), psi, final_relu=True)
            logit = logit + _mlp(np.concatenate([e, rest, count], axis=1), head, final_relu=False)[:, 0]
        return _sigmoid(logit / len(self._members) / self._temperature[np.argmax(count, axis=1) + 2])


def game24_value(*, weights: str | Path | None = None, name: str = "game24_value") -> Game24Value:
    """The learned Game of 24 value (see :class:`Game24Value`)."""
    return Game24Value(weights=weights, name=name)


def game24_policy(*, weights: str | Path | None = None, name: str = "game24_policy") -> Game24Policy:
    """The learned Game of 24 policy (see :class:`Game24Policy`)."""
    return Game24Policy(weights=weights, name=name)
