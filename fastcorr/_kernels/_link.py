"""Calls into shared bodies by symbol, so that each body's machine code exists once.

Numba links a called function's LLVM module into every caller and optimises and
compiles it again there: a body called by a serial and a parallel loop (and by the
parfor's outlined gufunc) was compiled three times, which made up most of a cold first
call. A dispatcher made :func:`by_symbol` is called instead through its symbol, which the
JIT resolves to the one compiled copy already loaded in the process.

A caller's machine code then needs its callees loaded before it: the cache stores, with
each entry, the bodies its code calls (:func:`callees`), and :func:`load` compiles or loads
them before the entry's code is linked. An entry whose callee no longer has the same symbol
(recompiled after its own entry was damaged) is recompiled too.
"""

from __future__ import annotations

import importlib
import weakref

from numba.core import imputils

#: For each code library being built, the bodies its code calls: (module, qualname, argument types, symbol).
_CALLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def by_symbol(dispatcher) -> None:
    """Make compiled callers of ``dispatcher`` call its code by symbol instead of copying it."""
    add_overload = dispatcher.add_overload
    func = dispatcher.py_func

    def add(cres):
        add_overload(cres)
        if not cres.objectmode:
            # Numba has just registered a call that links cres.library; replace it.
            dispatcher.targetctx._defns.pop(cres.entry_point, None)
            dispatcher.targetctx._defns[cres.entry_point].append(*_call(func, cres.fndesc))

    dispatcher.add_overload = add


def _call(func, fndesc):
    call = imputils.user_function(fndesc, libs=())
    callee = (func.__module__, func.__qualname__, tuple(fndesc.argtypes), fndesc.mangled_name)

    def lower(context, builder, sig, args):
        _CALLS.setdefault(context.active_code_library, set()).add(callee)
        return call(context, builder, sig, args)

    lower.libs = ()
    return lower, call.signature


def callees(library) -> list:
    """The bodies called by symbol from ``library`` and the libraries linked into it."""
    found, todo, seen = set(), [library], set()
    while todo:
        lib = todo.pop()
        if id(lib) not in seen:
            seen.add(id(lib))
            found |= _CALLS.get(lib, set())
            todo.extend(getattr(lib, "_linking_libraries", ()))
    return sorted(found, key=lambda c: (c[0], c[1], c[3]))


def load(calls, codegen) -> bool:
    """Compile (or load from the cache) every callee; False when one's symbol has changed."""
    for module, qualname, argtypes, symbol in calls:
        body = importlib.import_module(module)
        for name in qualname.split("."):
            body = getattr(body, name)
        body.compile(argtypes)
        if not codegen._engine.is_symbol_defined(symbol):
            return False
    return True
