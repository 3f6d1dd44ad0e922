r"""Tools as a generator: typed Python callables, run under time limits, proposed by a pluggable proposer.

Three parts, each replaceable:

* :class:`Tools`, a registry of typed callables. A tool's parameters come from its type hints
  (``def add(a: Fraction, b: Fraction) -> Fraction``); arguments are converted to those types
  before the call (``"8/3"`` becomes ``Fraction(8, 3)``), and a tool whose signature cannot be
  typed (a parameter without a hint, ``*args``, ``**kwargs``, keyword-only parameters) is refused
  when it is registered. Every call runs under a time limit. An exception, a timeout or bad
  arguments become an :class:`~ponder.search.protocols.Observation` in the state, never a crash of
  the search. Nothing from model output is ever executed except through a registered tool: the
  registry looks tools up by name and converts arguments by type, with no ``eval`` and no shell.
* An environment (:class:`Environment`, e.g. :class:`ponder.models.game24.Game24`) that holds the
  world the tools act on: its start from a prompt, the legal calls of a world, the world after a
  call, whether a world is solved or a dead end, a hashable key.
* A proposer: :class:`Enumerate` lists every legal call; :class:`LMProposer` asks a language model
  to write ``k`` calls and parses them strictly (malformed calls are dropped and counted; equal
  calls are merged, their frequency kept for self-consistency costs).

:class:`ToolGenerator` puts them together behind the expansion protocol: ``root(prompt)``,
``propose(states, k, *, seed=None)`` (calls and their log-probabilities, nothing executed) and
``expand(states, k, actions=None)`` (execute the named calls, or the proposer's, one child per
call). Searches that score a call before executing it (A* with a policy) use ``propose`` and then
``expand(actions=...)`` on the calls they choose.

Time limits (``isolation=`` per tool):

* ``"thread"`` (default): the call runs in a worker thread and the caller waits at most
  ``timeout`` seconds. Python cannot kill a thread: a call that never returns keeps its thread
  busy until the process exits. The registry then abandons that worker (the timeout is
  recorded), starts a new one for later calls, and refuses to start more than ``max_stuck``
  abandoned workers (:class:`ToolError`), so a hanging tool cannot pile up threads unnoticed.
* ``"process"``: the call runs in a worker process, which is killed and replaced when it overruns,
  so nothing keeps running. The tool must be importable by name (a module-level function) and its
  arguments and result picklable; each call costs an inter-process round trip (~0.1-1 ms).
* ``"inline"``: no worker, no time limit (for pure functions that cannot hang; the cheapest).

The ledger counts ``tool_calls`` (tools run), ``tool_failures`` (raised), ``tool_timeouts``,
``tool_rejected`` (bad arguments or illegal calls, refused before running), ``tool_seconds``,
and, for proposers, ``proposals`` and ``proposals_malformed``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import inspect
import math
import multiprocessing
import queue
import threading
import time
import typing
from fractions import Fraction
from typing import Any, Callable, Protocol, Sequence

from ponder.models.vocab import token_texts
from ponder.search.config import seed_for
from ponder.search.ledger import charge, register_counter
from ponder.search.protocols import Call, ConfigError, Observation, PonderError, Step, ToolState, check_choice

__all__ = [
    "Enumerate",
    "Environment",
    "LMProposer",
    "LegalCallMask",
    "Proposal",
    "Tool",
    "ToolError",
    "ToolGenerator",
    "ToolSignatureError",
    "Tools",
]

ISOLATIONS = ("thread", "process", "inline")
CONSTRAINTS = ("none", "legal")
for _name, _what in (("tool_calls", "tool calls run"), ("tool_failures", "tool calls that raised"),
                     ("tool_timeouts", "tool calls that overran their time limit"),
                     ("tool_rejected", "tool calls refused before running (bad arguments, illegal)"),
                     ("tool_seconds", "seconds spent in tools"), ("proposals", "calls proposed"),
                     ("proposals_malformed", "proposed calls dropped as malformed")):
    register_counter(_name, _what)


class ToolError(PonderError):
    """A tool registry cannot go on (too many workers stuck in calls that never returned)."""


class ToolSignatureError(ConfigError):
    """A callable cannot be registered as a tool: its signature cannot be typed."""


# --------------------------------------------------------------------------------------------------
# Typed tools and the registry.


def _convert(value: Any, kind: type, name: str) -> Any:
    """``value`` as an instance of ``kind`` (strings parsed for numbers and booleans)."""
    if kind is Any or isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise TypeError(f"argument {name!r} must be a bool, got {value!r}")
    if kind in (int, float, Fraction, str):
        if isinstance(value, bool) or (kind is not str and not isinstance(value, (int, float, str, Fraction))):
            raise TypeError(f"argument {name!r} must be {kind.__name__}, got {value!r}")
        try:
            out = kind(value)
        except (TypeError, ValueError, ZeroDivisionError):
            raise TypeError(f"argument {name!r} must be {kind.__name__}, got {value!r}") from None
        if kind is int and isinstance(value, (float, Fraction)) and out != value:
            raise TypeError(f"argument {name!r} must be a whole number, got {value!r}")
        if kind is float and not math.isfinite(out):
            raise TypeError(f"argument {name!r} must be a finite float, got {value!r}")
        return out
    raise TypeError(f"argument {name!r} must be {getattr(kind, '__name__', kind)}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Tool:
    """A registered callable with its typed parameters.

    Attributes:
        name: the name calls use.
        fn: the callable.
        params: ``(name, type)`` per positional parameter, from the type hints.
        returns: the return type hint (``Any`` when absent).
        timeout: seconds a call may take (None: no limit; only with ``isolation="inline"``).
        isolation: "thread", "process" or "inline" (see the module docstring).
        doc: the first line of the callable's docstring (shown to LM proposers).
    """

    name: str
    fn: Callable
    params: tuple[tuple[str, type], ...]
    returns: Any
    timeout: float | None
    isolation: str
    doc: str

    @classmethod
    def of(cls, fn: Callable, *, name: str | None = None, timeout: float | None = 1.0, isolation: str = "thread") -> "Tool":
        """Type ``fn`` from its signature and hints.

        Raises:
            ToolSignatureError: ``fn`` is not callable, or a parameter has no type hint or is
                variadic or keyword-only, or the hints cannot be resolved.
        """
        label = name or getattr(fn, "__name__", repr(fn))
        if not callable(fn):
            raise ToolSignatureError(f"tool {label!r} is not callable: {fn!r}")
        check_choice("isolation", isolation, ISOLATIONS)
        if timeout is not None and not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0):
            raise ConfigError(f"tool {label!r}: timeout must be a positive number of seconds or None, got {timeout!r}")
        if timeout is None and isolation != "inline":
            raise ConfigError(f"tool {label!r}: a {isolation!r} tool needs a timeout (None is for isolation='inline')")
        try:
            sig = inspect.signature(fn)
            hints = typing.get_type_hints(fn)
        except (TypeError, ValueError, NameError) as exc:
            raise ToolSignatureError(f"tool {label!r}: its signature cannot be typed ({exc})") from None
        params = []
        for p in sig.parameters.values():
            if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                raise ToolSignatureError(f"tool {label!r}: parameter {p.name!r} is {p.kind.description}; tools take typed positional parameters only")
            if p.name not in hints:
                raise ToolSignatureError(f"tool {label!r}: parameter {p.name!r} has no type hint; every parameter needs one (e.g. {p.name}: int)")
            kind = hints[p.name]
            if kind is not Any and not isinstance(kind, type):
                raise ToolSignatureError(f"tool {label!r}: parameter {p.name!r} has hint {kind!r}; use a plain type (int, float, str, bool, Fraction, a class) or Any")
            params.append((p.name, kind))
        doc = (inspect.getdoc(fn) or "").strip().splitlines()
        return cls(name=label, fn=fn, params=tuple(params), returns=hints.get("return", Any),
                   timeout=None if timeout is None else float(timeout), isolation=isolation, doc=doc[0] if doc else "")

    def bind(self, args: Sequence[Any]) -> tuple:
        """``args`` converted to the parameter types.

        Raises:
            TypeError: the wrong number of arguments, or one that does not convert.
        """
        if len(args) != len(self.params):
            raise TypeError(f"{self.name} takes {len(self.params)} arguments ({', '.join(n for n, _ in self.params)}), got {len(args)}")
        return tuple(_convert(v, kind, n) for v, (n, kind) in zip(args, self.params))

    def signature(self) -> str:
        """``add(a: Fraction, b: Fraction) -> Fraction``."""
        ret = getattr(self.returns, "__name__", str(self.returns))
        return f"{self.name}({', '.join(f'{n}: {k.__name__ if isinstance(k, type) else k}' for n, k in self.params)}) -> {ret}"


class _ThreadWorker:
    """One daemon thread running calls from a queue (each in the caller's context, so the
    active ledgers still see what a tool charges)."""

    def __init__(self):
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="ponder-tool", daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            job = self.inbox.get()
            if job is None:
                return
            ctx, fn, args, out = job
            try:
                out.put(("ok", ctx.run(fn, *args)))
            except BaseException as exc:  # noqa: BLE001 - every failure becomes an observation
                out.put(("error", exc))

    def call(self, fn, args, timeout):
        out: queue.SimpleQueue = queue.SimpleQueue()
        self.inbox.put((contextvars.copy_context(), fn, args, out))
        try:
            return out.get(timeout=timeout)
        except queue.Empty:
            return ("timeout", None)

    def close(self):
        self.inbox.put(None)


def _process_loop(conn, fn):  # runs in the worker process; fn was unpickled before this runs
    conn.send(("ready", None))
    while True:
        try:
            args = conn.recv()
        except EOFError:
            return
        if args is None:
            return
        try:
            conn.send(("ok", fn(*args)))
        except BaseException as exc:  # noqa: BLE001
            try:
                conn.send(("error", exc))
            except Exception:  # noqa: BLE001 - the exception itself does not pickle
                conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))


class _ProcessWorker:
    """A worker process for one tool (spawned, so no locks of this process are inherited); killed
    on a timeout. Starting it (a fresh interpreter importing the tool's module) is not counted
    against the call's time limit: it waits up to ``startup`` seconds for the worker to be ready."""

    def __init__(self, fn, startup: float = 120.0):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_process_loop, args=(child, fn), daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(startup):
            self.kill()
            raise ToolError(f"the worker process of tool {getattr(fn, '__name__', fn)!r} did not start within {startup:g} s")
        try:
            self.conn.recv()
        except EOFError:
            self.kill()
            raise ToolError(f"the worker process of tool {getattr(fn, '__name__', fn)!r} died at start (is the tool importable "
                            "by name, a module-level function?)") from None

    def call(self, args, timeout):
        try:
            self.conn.send(args)
        except Exception as exc:  # noqa: BLE001 - e.g. an argument that does not pickle
            return ("error", exc)
        if not self.conn.poll(timeout):
            self.kill()
            return ("timeout", None)
        try:
            return self.conn.recv()
        except EOFError:
            self.kill()
            return ("error", RuntimeError("the tool's worker process died"))

    def kill(self):
        self.proc.kill()
        self.proc.join(1.0)
        self.conn.close()

    def close(self):
        try:
            self.conn.send(None)
        except Exception:  # noqa: BLE001
            pass
        self.proc.join(1.0)
        if self.proc.is_alive():
            self.proc.kill()


class Tools:
    """A registry of typed tools, run under time limits.

    Args:
        tools: callables (or :class:`Tool`) to register now, under their ``__name__``.
        timeout: the default time limit of a call, in seconds.
        isolation: the default isolation ("thread", "process" or "inline").
        max_stuck: the most thread workers left behind in calls that never returned; one more
            timeout raises :class:`ToolError`.

    Example:
        >>> tools = Tools()
        >>> @tools.register
        ... def add(a: int, b: int) -> int:
        ...     return a + b
        >>> tools.run(Call("add", ("2", 3)))
        Observation(status='ok', value=5, error=None, seconds=...)
    """

    def __init__(self, tools: Sequence[Callable | Tool] = (), *, timeout: float = 1.0, isolation: str = "thread", max_stuck: int = 8):
        check_choice("isolation", isolation, ISOLATIONS)
        self.timeout = timeout
        self.isolation = isolation
        self.max_stuck = int(max_stuck)
        self.stuck = 0
        self._tools: dict[str, Tool] = {}
        self._thread: _ThreadWorker | None = None
        self._process: dict[str, _ProcessWorker] = {}
        self._lock = threading.Lock()
        for t in tools:
            self.add(t)

    def add(self, tool: Callable | Tool, *, name: str | None = None, timeout: float | None | str = "default",
            isolation: str | None = None) -> Tool:
        """Register a callable (typed from its hints) or a :class:`Tool`; returns the Tool."""
        if not isinstance(tool, Tool):
            tool = Tool.of(tool, name=name, timeout=self.timeout if timeout == "default" else timeout,
                           isolation=isolation or self.isolation)
        if tool.name in self._tools:
            raise ConfigError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def register(self, fn: Callable | None = None, **options):
        """Decorator form of :meth:`add` (``@tools.register`` or ``@tools.register(timeout=5)``)."""
        if fn is None:
            return lambda f: (self.add(f, **options), f)[1]
        self.add(fn, **options)
        return fn

    def __getitem__(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise KeyError(f"no tool named {name!r}; registered: {', '.join(self._tools) or 'none'}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def __iter__(self):
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def run(self, call: Call) -> Observation:
        """Run one call: look the tool up, convert its arguments, run it under its time limit.

        Never raises for the call's own failures: an unknown tool or bad arguments give
        ``status="rejected"``, an exception ``"error"``, an overrun ``"timeout"``.

        Raises:
            ToolError: a timeout when ``max_stuck`` thread workers are already stuck.
        """
        tool = self._tools.get(call.tool)
        if tool is None:
            charge(tool_rejected=1)
            return Observation("rejected", error=f"no tool named {call.tool!r}; the tools are {', '.join(self._tools)}")
        try:
            args = tool.bind(call.args)
        except TypeError as exc:
            charge(tool_rejected=1)
            return Observation("rejected", error=str(exc))
        t0 = time.perf_counter()
        status, value = self._execute(tool, args)
        seconds = time.perf_counter() - t0
        charge(tool_calls=1, tool_seconds=seconds)
        if status == "ok":
            return Observation("ok", value=value, seconds=seconds)
        if status == "timeout":
            charge(tool_timeouts=1)
            return Observation("timeout", error=f"{tool.name} did not return within {tool.timeout:g} s", seconds=seconds)
        charge(tool_failures=1)
        return Observation("error", error=f"{type(value).__name__}: {value}", seconds=seconds)

    def _execute(self, tool: Tool, args: tuple) -> tuple[str, Any]:
        if tool.isolation == "inline":
            try:
                return "ok", tool.fn(*args)
            except Exception as exc:  # noqa: BLE001 - an observation, not a crash
                return "error", exc
        with self._lock:
            if tool.isolation == "process":
                worker = self._process.get(tool.name)
                if worker is None or not worker.proc.is_alive():
                    worker = self._process[tool.name] = _ProcessWorker(tool.fn)
                out = worker.call(args, tool.timeout)
                if out[0] == "timeout":
                    del self._process[tool.name]  # killed; the next call spawns a new one
                return out
            if self._thread is None:
                self._thread = _ThreadWorker()
            out = self._thread.call(tool.fn, args, tool.timeout)
            if out[0] == "timeout":
                self._thread = None  # stuck in the call: abandoned, never reused
                self.stuck += 1
                if self.stuck > self.max_stuck:
                    raise ToolError(f"{self.stuck} tool calls never returned (the last: {tool.name}); their threads cannot be "
                                    f"stopped. Give hanging tools isolation='process', or raise max_stuck={self.max_stuck}")
            return out

    def close(self) -> None:
        """Stop the workers (abandoned threads run on until their calls return)."""
        with self._lock:
            if self._thread is not None:
                self._thread.close()
                self._thread = None
            for worker in self._process.values():
                worker.close()
            self._process.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def describe(self) -> str:
        """One line per tool: its signature and the first line of its docstring."""
        return "\n".join(f"{t.signature()}: {t.doc}" if t.doc else t.signature() for t in self)


# --------------------------------------------------------------------------------------------------
# Environments and proposers.


class Environment(Protocol):
    """The world tools act on (see :class:`ponder.models.game24.Game24` for one)."""

    tools: Tools

    def start(self, prompt: Any) -> Any:
        """The world at the start of a search for ``prompt``."""

    def legal_calls(self, world: Any) -> list[Call]:
        """The calls allowed in ``world``, in a fixed order (empty: a dead end)."""

    def check(self, world: Any, call: Call) -> str | None:
        """Why ``call`` is not allowed in ``world``, or None."""

    def after(self, world: Any, call: Call, observation: Observation) -> Any:
        """The world after ``call`` returned ``observation`` (an ok one)."""

    def solved(self, world: Any) -> bool:
        """The goal is reached."""

    def key(self, world: Any) -> Any:
        """A hashable identity of ``world``."""

    def describe(self, world: Any) -> str:
        """The world as text (for LM proposers and value prompts)."""

    def parse(self, text: str) -> Call | None:
        """A call written as text (``add(3, 8/3)``), or None when it is malformed."""


@dataclasses.dataclass(frozen=True)
class Proposal:
    """A proposed call with the proposer's log-probability of it and how often it was drawn."""

    call: Call
    logprob: float = 0.0
    count: int = 1


class Enumerate:
    """Propose every legal call of a state, each with log-probability ``-log n`` (uniform)."""

    name = "enumerate"

    def propose(self, env: Environment, states: Sequence[ToolState], k: int | None = None, *,
                seed: int | None = None) -> list[list[Proposal]]:
        out = []  # (enumeration draws nothing: seed is accepted and unused)
        for s in states:
            calls = env.legal_calls(s.world)
            if k is not None:
                calls = calls[:k]
            lp = -math.log(len(calls)) if calls else 0.0
            out.append([Proposal(c, lp) for c in calls])
            charge(proposals=len(calls))
        return out


class LegalCallMask:
    r"""A logits hook under which each row can only spell one of its state's legal calls.

    For a row whose prompt is state :math:`s`'s, with targets
    :math:`T_s = \{\text{" "} + \mathrm{str}(c) + \text{"\\n"} : c \in \mathrm{legal}(s)\}` and
    the step's text so far :math:`x`, token :math:`v` (decoded text :math:`t_v`) is kept iff
    :math:`x t_v` is a prefix of some target; every other logit becomes :math:`-\infty`. Each
    target's first ``len - len(x)`` characters are looked up in a text-to-ids table of the
    vocabulary, so a step costs :math:`O(|T_s| \cdot L)` dictionary lookups per row (L: a call's
    length), not a pass over the vocabulary. Only calls that ``env.parse`` reads back as
    themselves become targets.

    Args:
        tokenizer: decodes the vocabulary (built once, on first use, at the logits' width).
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.texts: list[str] | None = None
        self.by_text: dict[str, list[int]] = {}

    def _vocab(self, width: int) -> None:
        self.texts = token_texts(self.tokenizer, width)
        self.by_text = {}
        for i, t in enumerate(self.texts):
            if t:
                self.by_text.setdefault(t, []).append(i)

    def targets(self, calls: Sequence[Call], env: Environment) -> list[str]:
        """The lines that spell ``calls`` (those ``env.parse`` reads back as themselves)."""
        return [f" {c}\n" for c in calls if env.parse(str(c)) == c]

    def for_calls(self, roots: Sequence[Any], legal: Sequence[Sequence[Call]], env: Environment) -> Callable:
        """The hook for one ``expand`` over ``roots``: row parents are looked up by their tokens."""
        table = {tuple(r.tokens): self.targets(calls, env) for r, calls in zip(roots, legal)}
        allowed: dict[tuple[int, tuple], Any] = {}  # (id(parent), step tokens so far) -> token ids [n] (a tensor); parents outlive the call

        def ids_for(parent, done: str, width: int) -> list[int]:
            ids: set[int] = set()
            for line in table[tuple(parent.tokens)]:
                if line.startswith(done):
                    rest = line[len(done):]
                    for n in range(1, len(rest) + 1):
                        ids.update(self.by_text.get(rest[:n], ()))
            # nothing spells on (cannot happen with a byte-level vocabulary): leave the row free
            return sorted(ids) if ids else list(range(width))

        def hook(states, logits):  # logits [R, V]
            import torch  # noqa: PLC0415

            width = logits.shape[1]
            if self.texts is None or len(self.texts) != width:
                self._vocab(width)
            per_row = []
            for st in states:
                key = (id(st.parent), st.step_tokens)
                ids = allowed.get(key)
                if ids is None:
                    ids = allowed[key] = torch.tensor(ids_for(st.parent, "".join(self.texts[t] for t in st.step_tokens), width))
                per_row.append(ids)
            cols = torch.cat(per_row)  # [n]: the allowed token ids, row after row
            rows = torch.repeat_interleave(torch.arange(len(per_row)), torch.tensor([len(i) for i in per_row]))  # [n]
            out = torch.full_like(logits, float("-inf"))  # [R, V]: the allowed logits, -inf elsewhere
            out[rows, cols] = logits[rows, cols]
            return out

        return hook


class LMProposer:
    r"""A language model writes ``k`` calls per state; they are parsed strictly.

    The prompt (``env.lm_prompt(world)`` when the environment has one, else the tool list and
    ``env.describe(world)``) ends where a call is to be written; ``k`` lines are sampled in one
    batched ``expand`` (temperature ``temperature``, each ending at a newline or ``max_tokens``).
    A line that ``env.parse`` rejects is dropped and counted (``proposals_malformed``). Equal
    calls are merged: a call drawn ``c`` of ``k`` times gets count ``c`` and log-probability
    :math:`\log(c / k)`, its self-consistency frequency among the samples (the cost ToolChain*
    uses; it compares across prompts of different lengths, where sequence log-probabilities do
    not). Calls that are well formed but illegal in the state are kept: executing them gives a
    ``"rejected"`` observation, counted as ``tool_rejected``.

    With ``constrain="legal"`` the model can only spell legal calls: a :class:`LegalCallMask`
    logits hook keeps, at every token, only the tokens that continue the line toward one of the
    state's legal calls (``" " + str(call) + "\n"`` for each ``env.legal_calls(world)``). The
    model's preferences among the legal calls are kept (its logits, renormalised over what the
    mask allows), none of its samples is wasted, and ``proposals_malformed`` stays 0; a state
    without legal calls is a dead end and costs no decoding.

    Args:
        lm: a text generator (``root``, ``expand`` with ``step=`` and ``logits_hook=``), e.g.
            :class:`ponder.models.LM`; ``constrain="legal"`` also needs its ``tokenizer``.
        temperature: sampling temperature of the calls.
        max_tokens: the longest call line, in tokens.
        seed: seed of the sampling streams (each propose call draws fresh ones).
        chat: how the LM reads the prompt: "raw" (default: the prompt is a few-shot completion
            that ends where a call is written; a chat template would make an instruct model
            answer in prose) or the LM's other chat modes.
        constrain: "none" (free sampling, parsed strictly) or "legal" (only legal calls can be
            written; see above).
    """

    name = "lm"

    def __init__(self, lm: Any, *, temperature: float = 0.8, max_tokens: int = 16, seed: int = 0, chat: str = "raw",
                 constrain: str = "none"):
        self.lm = lm
        self.chat = chat
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.seed = seed
        self.calls = 0
        self.constrain = check_choice("constrain", constrain, CONSTRAINTS)
        self._mask = None
        if constrain == "legal":
            if getattr(lm, "tokenizer", None) is None:
                raise ConfigError(f"constrain='legal' needs an LM with a tokenizer; {type(lm).__name__} has none")
            self._mask = LegalCallMask(lm.tokenizer)

    def prompt(self, env: Environment, world: Any) -> str:
        if hasattr(env, "lm_prompt"):
            return env.lm_prompt(world)
        return f"Tools:\n{env.tools.describe()}\nState: {env.describe(world)}\nNext call:"

    def propose(self, env: Environment, states: Sequence[ToolState], k: int | None = None, *,
                seed: int | None = None) -> list[list[Proposal]]:
        """``k`` sampled calls per state (8 by default), parsed, merged by count. ``seed`` fixes
        this call's draws (a search passes its own, so its proposals do not depend on what ran
        before it); None draws from the proposer's stream (``seed_for(self.seed, calls so far)``)."""
        k = 8 if k is None else int(k)
        out: list[list[Proposal]] = [[] for _ in states]
        live = list(range(len(states)))
        if self._mask is not None:
            legal = [env.legal_calls(s.world) for s in states]
            live = [i for i in live if legal[i]]  # no legal call: a dead end, nothing to decode
            if not live:
                return out
        roots = [self.lm.root(self.prompt(env, states[i].world), chat=self.chat) for i in live]
        hook = None if self._mask is None else self._mask.for_calls(roots, [legal[i] for i in live], env)
        step = Step(max_tokens=self.max_tokens, stop=("\n",))
        self.calls += 1
        children = self.lm.expand(roots, k, step=step, temperature=self.temperature,
                                  seed=seed if seed is not None else seed_for(self.seed, self.calls),
                                  logits_hook=hook)
        for i, kids in zip(live, children):
            counts: dict[Call, int] = {}
            malformed = 0
            for kid in kids:
                call = env.parse(kid.step_text.strip())
                if call is None:
                    malformed += 1
                else:
                    counts[call] = counts.get(call, 0) + 1
            charge(proposals=len(kids), proposals_malformed=malformed)
            out[i] = [Proposal(c, math.log(n / len(kids)), n) for c, n in counts.items()]
        return out


# --------------------------------------------------------------------------------------------------
# The generator.


class ToolGenerator:
    """Tool calls behind the expansion protocol: states are :class:`ToolState`, actions are calls.

    Args:
        env: the environment (its ``tools`` run the calls).
        proposer: "enumerate" (every legal call), an :class:`LMProposer`, or any object with
            ``propose(env, states, k) -> list[list[Proposal]]``.
    """

    def __init__(self, env: Environment, *, proposer: Any = "enumerate"):
        self.env = env
        if proposer == "enumerate":
            proposer = Enumerate()
        elif not callable(getattr(proposer, "propose", None)):
            raise ConfigError(f"proposer must be 'enumerate' or have propose(env, states, k), got {proposer!r}")
        self.proposer = proposer
        try:
            params = inspect.signature(proposer.propose).parameters
        except (TypeError, ValueError):
            params = {}
        self._proposer_seeded = "seed" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())

    def root(self, prompt: Any, **options) -> ToolState:
        world = self.env.start(prompt)
        solved = self.env.solved(world)
        return ToolState(prompt=prompt, world=world, key=self.env.key(world), solved=solved,
                         finished=solved or not self.env.legal_calls(world))

    def cost_to_go(self, states: Sequence[ToolState]) -> list[float]:
        """A lower bound on the calls each state still needs (``env.cost_to_go``; 0 without one)."""
        fn = getattr(self.env, "cost_to_go", None)
        return [float(fn(s.world)) if fn is not None else 0.0 for s in states]

    def propose(self, states: Sequence[ToolState], k: int | None = None, *, seed: int | None = None) -> list[list[Proposal]]:
        """Calls for every state, nothing executed: ``out[i]`` are the proposals of ``states[i]``
        (empty for a dead end). ``seed`` reaches a proposer whose ``propose`` takes one (a
        search's ``seed_for(seed, call)``); others are called without it."""
        if seed is not None and self._proposer_seeded:
            return self.proposer.propose(self.env, states, k, seed=seed)
        return self.proposer.propose(self.env, states, k)

    def expand(self, states: Sequence[ToolState], k: int | Sequence[int] | None = None, *,
               actions: Sequence[Sequence[Call | Proposal]] | None = None, **options) -> list[list[ToolState]]:
        """Execute calls: ``actions[i]`` (calls or proposals) on ``states[i]``, or the proposer's
        (``k`` per state; None for all it has). One child per call, in order; a call that fails
        gives a child whose world is its parent's and whose ``observation`` says why."""
        if actions is None:
            ks = [k] * len(states) if k is None or isinstance(k, int) else list(k)
            actions = [self.propose([s], kk)[0] for s, kk in zip(states, ks)]
        if len(actions) != len(states):
            raise ValueError(f"expand got {len(actions)} action lists for {len(states)} states")
        out = []
        for state, calls in zip(states, actions):
            if state.finished and calls:
                raise ValueError(f"state {state.index} is finished (solved={state.solved}); it has no successors")
            out.append([self.step(state, c) for c in calls])
        return out

    def step(self, state: ToolState, action: Call | Proposal) -> ToolState:
        """Execute one call on ``state``: its child."""
        proposal = action if isinstance(action, Proposal) else Proposal(action)
        call = proposal.call
        reason = self.env.check(state.world, call)
        if reason is not None:
            charge(tool_rejected=1)
            obs = Observation("rejected", error=reason)
        else:
            obs = self.env.tools.run(call)
        world = self.env.after(state.world, call, obs) if obs.ok else state.world
        solved = obs.ok and self.env.solved(world)
        dead = not solved and not self.env.legal_calls(world)
        lq = (state.proposal_logprob or 0.0) + proposal.logprob  # log q of the path of calls
        return ToolState(prompt=state.prompt, parent=state, depth=state.depth + 1, world=world, key=self.env.key(world),
                         call=call, observation=obs, solved=solved, finished=solved or dead, proposal_logprob=lq,
                         meta={"proposal_count": proposal.count, "step_logprob": proposal.logprob})
