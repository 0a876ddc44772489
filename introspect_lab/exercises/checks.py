"""Self-checks: call the student's function on fresh inputs and compare it with the library.

``check("saliency", my_saliency)`` draws new random inputs (a fresh seed on
every call, nothing read from disk), computes the answer with the library's
own implementation, then calls ``my_saliency`` on copies of the same inputs
*while the library functions that would give the answer away are switched
off* (calling them raises :class:`UseYourOwnCode`). It prints the relative
error of the cs231n assignments, ``max|x − y| / max(1e-8, |x| + |y|)``, and
returns whether it is below the task's tolerance. Functions that take a
model must also leave it as they found it (hooks, ``requires_grad``,
train/eval, parameter gradients).
"""

from __future__ import annotations

import copy
import importlib
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["rel_error", "check", "Task", "UseYourOwnCode", "register", "TASKS"]


def rel_error(x, y) -> float:
    """``max|x − y| / max(1e-8, |x| + |y|)``, elementwise maximum (cs231n's check)."""
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"Shapes differ: your answer has shape {x.shape}, the reference {y.shape}.")
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


class UseYourOwnCode(RuntimeError):
    """Raised when a student's function calls the library function the exercise asks them to write."""


@dataclass(frozen=True)
class Task:
    """One exercise: how to make fresh inputs, the library's answer, and what is switched off.

    ``cases(g, more)`` returns a list of argument tuples (``more=True`` adds the
    harder cases that the hidden tests use); ``reference(*args)`` is the
    library's answer; ``blocked`` are dotted names of functions that raise
    :class:`UseYourOwnCode` while the student's function runs; ``compare``
    turns (answer, reference) into comparable arrays (e.g. up to a sign);
    ``arity``: the student's function gets only the first ``arity`` arguments
    of a case (the rest, e.g. the model behind given activations, are for the reference).
    """

    name: str
    cases: Callable[[torch.Generator, bool], list[tuple]]
    reference: Callable[..., Any]
    blocked: tuple[str, ...] = ()
    hint: str = ""
    tol: float = 1e-3
    compare: Callable[[Any, Any], tuple[Any, Any]] | None = None
    arity: int | None = None


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add a task to :data:`TASKS` (one name per task)."""
    if task.name in TASKS:
        raise ValueError(f"Task {task.name!r} is registered twice.")
    TASKS[task.name] = task
    return task


def _resolve(dotted: str):
    module, _, attr = dotted.rpartition(".")
    return importlib.import_module(module), attr


def _blocker(dotted: str) -> Callable:
    def blocked(*args, **kwargs):
        raise UseYourOwnCode(
            f"`{dotted}` is switched off while `check` runs: this exercise asks you to write "
            "those lines yourself, with torch operations."
        )

    blocked.__name__ = dotted.rpartition(".")[2]
    return blocked


@contextmanager
def disabled(names: Sequence[str], fn: Callable | None = None) -> Iterator[None]:
    """Inside the block, every reference to the functions ``names`` raises :class:`UseYourOwnCode`.

    Replaced by identity wherever they are visible: the modules of
    ``introspect_lab``, the module that defines each name, and the globals
    of the student's function ``fn`` (``from introspect_lab... import x``
    in a notebook). Names that cannot be imported are skipped. Everything
    is restored on exit.
    """
    targets: dict[int, str] = {}
    spaces: list[dict] = []
    for dotted in names:
        try:
            module, attr = _resolve(dotted)
            obj = getattr(module, attr)
        except (ImportError, AttributeError):  # a module this installation does not have
            continue
        targets[id(obj)] = dotted
        spaces.append(vars(module))
    spaces += [vars(m) for n, m in list(sys.modules.items()) if n.split(".")[0] == "introspect_lab" and m]
    if fn is not None and hasattr(fn, "__globals__"):
        spaces.append(fn.__globals__)
    patched: list[tuple[dict, str, Any]] = []
    seen: set[int] = set()
    try:
        for space in spaces:
            if id(space) in seen:
                continue
            seen.add(id(space))
            for key, value in list(space.items()):
                if id(value) in targets:
                    patched.append((space, key, value))
                    space[key] = _blocker(targets[id(value)])
        yield
    finally:
        for space, key, value in reversed(patched):
            space[key] = value


def _model_state(args: tuple) -> list[tuple]:
    out = []
    for a in args:
        if isinstance(a, nn.Module):
            out.append(
                (
                    a,
                    [
                        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                        for m in a.modules()
                    ],
                    [p.requires_grad for p in a.parameters()],
                    [m.training for m in a.modules()],
                    [p.grad is None for p in a.parameters()],
                    [getattr(m, "inplace", None) for m in a.modules()],
                )
            )
    return out


def _model_changes(before: list[tuple]) -> str:
    for model, hooks, req, training, grads, inplace in before:
        (_, hooks2, req2, training2, grads2, inplace2) = _model_state((model,))[0]
        if hooks2 != hooks:
            return "your function left a hook on the model: remove it with handle.remove(), in a `finally`."
        if req2 != req:
            return "your function changed requires_grad of the model's parameters; leave them as they were."
        if training2 != training:
            return "your function switched the model between train() and eval(); leave it as it was."
        if grads2 != grads:
            return (
                "your function left gradients in the model's parameters (.grad); use "
                "torch.autograd.grad(score, x) instead of score.backward()."
            )
        if inplace2 != inplace:
            return "your function changed the inplace flag of a ReLU; restore it."
    return ""


def _clone(args: tuple) -> tuple:
    return tuple(
        a.detach().clone()
        if isinstance(a, torch.Tensor)
        else a
        if isinstance(a, nn.Module)
        else copy.deepcopy(a)
        for a in args
    )


def check(
    name: str, fn: Callable, *, more: bool = False, tol: float | None = None, verbose: bool = True
) -> bool:
    """Call ``fn`` on fresh inputs for task ``name``, compare with the library, print the error.

    ``more=True`` adds harder inputs (odd sizes, larger batches). Returns
    ``True`` when every case has a relative error below the task's tolerance
    and the function left any model it was given unchanged.
    """
    if name not in TASKS:
        raise ValueError(f"Unknown exercise {name!r}; known: {sorted(TASKS)}.")
    if not callable(fn):
        raise TypeError(
            f"check({name!r}, ...) takes your function itself (e.g. `my_{name}`), not its result "
            f"({type(fn).__name__})."
        )
    task = TASKS[name]
    tol = task.tol if tol is None else tol
    g = torch.Generator().manual_seed(secrets.randbits(62))
    cases = task.cases(g, more)
    worst = 0.0

    def say(ok: bool, text: str) -> bool:
        if verbose:
            print(f"{'✓' if ok else '✗'} {name}: {text}")
        return ok

    for i, args in enumerate(cases):
        expected = task.reference(*_clone(args))
        student_args = _clone(args[: task.arity] if task.arity is not None else args)
        before = _model_state(student_args)
        try:
            with disabled(task.blocked, fn):
                answer = fn(*student_args)
        except UseYourOwnCode as exc:
            return say(False, str(exc))
        change = _model_changes(before)
        if change:
            return say(False, change)
        if answer is None:
            return say(False, "your function returned None. Did you forget `return`?")
        if task.compare is not None:
            answer, expected = task.compare(answer, expected)
        try:
            err = rel_error(answer, expected)
        except (ValueError, TypeError) as exc:
            return say(False, f"{exc} (input {i + 1} of {len(cases)})")
        if not np.isfinite(err):
            hint = f" {task.hint}" if task.hint else ""
            return say(False, f"your answer holds NaN or inf on input {i + 1} of {len(cases)}.{hint}")
        worst = max(worst, err)
        if err >= tol:
            hint = f" {task.hint}" if task.hint else ""
            return say(
                False,
                f"relative error {err:.1e} on input {i + 1} of {len(cases)} (must be below {tol:.0e}).{hint}",
            )
    return say(True, f"relative error {worst:.1e} on {len(cases)} fresh inputs (below {tol:.0e}).")
