#!/usr/bin/env python3
"""fuzz_python_descs.py - a mutation fuzzer for the Python descriptor codec.

What it feeds: `nixl_agent.deserialize_descs` (the restricted unpickler of nixl._pickle), and the
extension's own deserializers (`nixlXferDList.__setstate__`, `nixlRegDList.__setstate__`, which
run the library's C codec on a pickle's state bytes). libFuzzer does not reach Python here (no
atheris in Debian), so this is a deterministic mutation fuzzer: from a seed corpus (the
reference's golden pickles and ours, tests/fuzz/corpus/python) it flips bits, truncates, splices
two inputs, inserts random bytes and, above all, pickle opcodes that name and call things
(GLOBAL, STACK_GLOBAL, INST, REDUCE, OBJ, NEWOBJ, BUILD, EXT1, PERSID) with dangerous names
(os.system, builtins.exec, subprocess.Popen, ...). A mutant whose outcome was not seen before
(the exception type and the first words of its message, or the result's shape) joins the
corpus, a crude stand-in for coverage feedback.

Each input must end in one of the controlled outcomes:
- a result made only of the allowed classes (the two descriptor lists or those classes
  themselves, and the plain values a pickle builds without naming a class: None, bool, int,
  float, str, bytes, bytearray, memoryview (protocol 5's READONLY_BUFFER), tuple, list, dict,
  set, frozenset), or
- one of the exceptions a bad pickle or a bad state may raise (pickle.UnpicklingError, EOFError,
  ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, MemoryError,
  RecursionError, and the nixl status errors of nixl._bindings),
and must not have run code: no audit event (PEP 578: os.system, subprocess.Popen, exec,
compile, import, open, the default unpickler's find_class...) may fire while it loads, the
canary module, which the dangerous names include, must never be called, and no module may have
been imported. An input may take at most -timeout seconds. Anything else is a failure: the
input is saved (<artifact_prefix>crash-<sha1>) and the exit status is 1. A crash of the
interpreter itself (a fault in the C codec) is caught by a parent process, which saves the
input the child was running (the child keeps it in shared memory) and fails the same way.

Usage, libFuzzer-like so that scripts/fuzz.sh runs it as the others:
  fuzz_python_descs.py [-max_total_time=S] [-artifact_prefix=P] [-seed=N] [-runs=N]
                       [-timeout=S (one input, default 20)] NEW_DIR CORPUS...
  fuzz_python_descs.py --replay CORPUS...   each file and every truncation of it (the test)
The last line is "Done N runs in S second(s)", as libFuzzer's.
"""
import hashlib
import mmap
import os
import pickle
import random
import struct
import sys
import tempfile
import time
import traceback
import types

MAX_LEN = 1 << 16  # inputs longer than this are cut (the shared-memory slot)

# The canary: a module whose functions record a call. Dangerous names in the mutations point
# at it as well as at real functions; a restricted unpickler must resolve neither.
_canary = types.ModuleType("nixl_fuzz_canary")
_canary.hits = 0


def _boom(*args, **kw):
    _canary.hits += 1
    return None


_canary.boom = _boom
_canary.Boom = type("Boom", (), {"__init__": lambda self, *a, **k: _boom(),
                                 "__setstate__": lambda self, s: _boom()})
sys.modules["nixl_fuzz_canary"] = _canary

# Python's audit events (PEP 578) during a load: os.system, subprocess.Popen, exec, compile,
# import, open, pickle.find_class of the default unpickler... A descriptor load raises none, so
# any event while one runs is code running that should not.
_audit = {"armed": False, "events": []}


# Not code: CPython reporting an error it cannot raise. Its unpickler does so for a
# BYTEARRAY8 whose length passes the input ("deallocated bytearray object has exported
# buffers", after the MemoryError or truncation error it does raise): counted, not failed.
_UNRAISABLE = ("sys.excepthook", "sys.unraisablehook")
_audit["unraisable"] = 0


def _audit_hook(event, args):
    if not _audit["armed"]:
        return
    if event in _UNRAISABLE:
        _audit["unraisable"] += 1
    else:
        _audit["events"].append(event)


sys.addaudithook(_audit_hook)

DANGEROUS = [
    ("nixl_fuzz_canary", "boom"), ("nixl_fuzz_canary", "Boom"),
    ("os", "system"), ("posix", "system"), ("builtins", "exec"), ("builtins", "eval"),
    ("__builtin__", "eval"), ("builtins", "getattr"), ("builtins", "__import__"),
    ("subprocess", "Popen"), ("subprocess", "check_output"), ("pickle", "loads"),
    ("nixl._bindings", "nixlAgent"), ("nixl._bindings", "nixlRemoteDList"),
    ("nixl._api", "nixl_agent"), ("nixl._bindings", "__dict__"),
    ("nixl._bindings", "nixlXferDList.__init__"), ("nixl_cu12._bindings", "os"),
    ("nixl._pickle", "DescsUnpickler"), ("copyreg", "_reconstructor"),
    ("nixl._bindings ", "nixlXferDList"), ("nixl._bindings\x00", "nixlXferDList"),
]


def _short_unicode(s):
    b = s.encode("utf-8", "surrogatepass")
    return b"\x8c" + bytes([len(b) & 0xFF]) + b[:255]


def _snippets(module, name):
    """Opcode sequences that name (and call) module.name."""
    g = b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    sg = _short_unicode(module) + _short_unicode(name) + b"\x93"
    arg = _short_unicode("__import__('nixl_fuzz_canary').boom()") + b"\x85"  # a 1-tuple
    return [
        g, sg, g + arg + b"R", sg + arg + b"R", sg + b")\x81", sg + b")\x81" + b"}b",
        b"(" + _short_unicode("x") + b"i" + module.encode() + b"\n" + name.encode() + b"\n",
        b"(" + sg + b"o", g + b"N\x85R", sg + b"N\x85R.", b"\x82\x01", b"P1\n",
        b"\x80\x04" + sg + arg + b"R.",
    ]


SNIPPETS = [s for m, n in DANGEROUS for s in _snippets(m, n)]
OPCODES = [b"R", b"b", b"o", b"\x81", b"\x92", b"\x93", b"(", b")", b"]", b"}", b"N", b".",
           b"\x94", b"h\x00", b"j\x00\x00\x00\x00", b"q\x00", b"0", b"2", b"1", b"t", b"e",
           b"a", b"s", b"u", b"\x85", b"\x86", b"\x87", b"\x88", b"\x89", b"\x8a\x09",
           b"\x8b\xff\xff\xff\x7f", b"B\xff\xff\xff\x7f", b"\x8e" + b"\xff" * 8,
           b"\x95" + b"\xff" * 8, b"\x96" + b"\x00" * 8, b"\x97", b"\x98"]
INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, ord("|"), ord("\n")]


class Mutator:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def mutate(self, data, pool):
        r = self.r
        d = bytearray(data)
        for _ in range(r.randint(1, 4)):
            op = r.randrange(10)
            pos = r.randint(0, len(d))
            if op == 0 and d:  # bit flip
                i = r.randrange(len(d))
                d[i] ^= 1 << r.randrange(8)
            elif op == 1 and d:  # interesting byte
                d[r.randrange(len(d))] = r.choice(INTERESTING)
            elif op == 2:  # truncate
                del d[r.randint(0, len(d)):]
            elif op == 3 and d:  # delete a run
                del d[pos:pos + r.randint(1, 16)]
            elif op == 4:  # random bytes
                d[pos:pos] = bytes(r.randrange(256) for _ in range(r.randint(1, 8)))
            elif op == 5:  # a dangerous opcode sequence
                d[pos:pos] = r.choice(SNIPPETS)
            elif op == 6:  # a lone opcode
                d[pos:pos] = r.choice(OPCODES)
            elif op == 7 and pool:  # splice with another input
                other = r.choice(pool)
                cut = r.randint(0, len(other))
                d = d[:pos] + bytearray(other[cut:])
            elif op == 8:  # a length field set to an edge value
                if len(d) >= 8:
                    i = r.randrange(len(d) - 7)
                    d[i:i + 8] = struct.pack("<Q", r.choice([0, 1, 2**31, 2**63, 2**64 - 1,
                                                             len(d)]))
            elif op == 9 and d:  # duplicate a run
                n = r.randint(1, 32)
                d[pos:pos] = d[max(0, pos - n):pos]
        return bytes(d[:MAX_LEN])


ALLOWED_TYPES = (type(None), bool, int, float, str, bytes, bytearray, memoryview, tuple, list,
                 dict, set, frozenset)


class Harness:
    def __init__(self):
        from nixl import _bindings
        from nixl._api import nixl_agent, nixl_agent_config
        self.b = _bindings
        self.classes = (_bindings.nixlXferDList, _bindings.nixlRegDList)
        errors = tuple(v for k, v in vars(_bindings).items()
                       if isinstance(v, type) and issubclass(v, Exception) and k.startswith("nixl"))
        self.expected = (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError,
                         IndexError, AttributeError, OverflowError, MemoryError, RecursionError
                         ) + errors
        self.agent = nixl_agent("pyfuzz", nixl_agent_config(enable_prog_thread=False,
                                                            backends=[]))
        if os.environ.get("NIXL_FUZZ_UNSAFE_SELFTEST") == "1":
            # the harness's own test: with plain pickle.loads it must fail (tests/python)
            self.agent.deserialize_descs = pickle.loads
        self.seen = set()
        # The text codecs that pickle and pickletools load on first use (protocol 0 strings):
        # loaded now, so that their import does not look like a pickle's doing.
        for codec in ("raw-unicode-escape", "unicode-escape", "ascii", "latin-1", "utf-8",
                      "utf-8-sig"):
            b"x".decode(codec)
        for warm in (b"S'x'\n.", b"Vx\n.", b"I1\n.", b"F1.0\n.", b"L1L\n."):
            try:
                self.agent.deserialize_descs(warm)
            except Exception:
                pass

    def _check_result(self, res):
        """Every object reachable from a result is of an allowed class (cycles included: a
        pickle's memo can make a list hold itself)."""
        stack, seen = [res], set()
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if any(obj is c for c in self.classes):  # the allowed class itself: harmless
                continue
            if isinstance(obj, self.classes):
                if type(obj) not in self.classes:
                    return f"a subclass {type(obj)!r}"
                continue
            if type(obj) not in ALLOWED_TYPES:
                return f"an object of class {type(obj).__module__}.{type(obj).__qualname__}"
            if isinstance(obj, (tuple, list, set, frozenset)):
                stack.extend(obj)
            elif isinstance(obj, dict):
                stack.extend(obj.keys())
                stack.extend(obj.values())
        return None

    def _call(self, what, fn, data):
        """One call; returns (signature, failure or None)."""
        mods = len(sys.modules)
        hits = _canary.hits
        _audit["events"].clear()
        _audit["armed"] = True
        err = res = None
        try:
            res = fn(data)
        except BaseException as e:  # sorted out below, once the audit is off
            err = e
        _audit["armed"] = False
        if _audit["events"]:
            return None, f"{what}: code ran (audit events {sorted(set(_audit['events']))})"
        if _canary.hits != hits:
            return None, f"{what}: code ran (the canary was called)"
        if len(sys.modules) != mods:
            return None, f"{what}: a module was imported while loading"
        if err is not None:
            if not isinstance(err, self.expected):
                return None, f"{what}: uncontrolled exception {type(err).__name__}: {err}"
            return (what, type(err).__name__, " ".join(str(err).split()[:3])), None
        why = self._check_result(res)
        sig = (what, "ok", type(res).__name__, len(res) if isinstance(res, self.classes) else -1)
        return sig, f"{what}: returned {why}" if why else None

    def _setstate(self, cls):
        def load(data):
            obj = cls.__new__(cls)
            obj.__setstate__(data)
            if len(list(obj)) != len(obj):  # every descriptor readable
                raise AssertionError("a list whose length and items disagree")
            return obj
        return load

    def run(self, data):
        """Signatures of the outcomes, or raise AssertionError with the failure."""
        sigs = []
        calls = [("deserialize_descs", self.agent.deserialize_descs),
                 ("xfer.__setstate__", self._setstate(self.b.nixlXferDList)),
                 ("reg.__setstate__", self._setstate(self.b.nixlRegDList))]
        for what, fn in calls:
            sig, why = self._call(what, fn, data)
            if why:
                raise AssertionError(why)
            sigs.append(sig)
        return tuple(sigs)


def read_corpus(dirs):
    files = []
    for d in dirs:
        if os.path.isdir(d):
            files += [os.path.join(d, f) for f in sorted(os.listdir(d))]
        elif os.path.isfile(d):
            files.append(d)
    out = []
    for f in files:
        if os.path.isfile(f):
            with open(f, "rb") as fh:
                out.append(fh.read()[:MAX_LEN])
    return out


def state_seeds(h, inputs):
    """The state bytes of every seed pickle that loads (the C codec's own input)."""
    out = []
    for d in inputs:
        try:
            obj = h.agent.deserialize_descs(d)
        except Exception:
            continue
        if isinstance(obj, h.classes):
            out.append(obj.__getstate__())
    return out


def replay(dirs):
    h = Harness()
    inputs = read_corpus(dirs)
    if not inputs:
        print("fuzz_python_descs: empty corpus", file=sys.stderr)
        return 1
    n = 0
    for data in inputs:
        for cut in range(len(data), -1, -1):
            try:
                h.run(data[:cut])
            except AssertionError as e:
                print(f"fuzz_python_descs: FAILED on {data[:cut]!r}: {e}", file=sys.stderr)
                return 1
            n += 1
    print(f"{len(inputs)} inputs, each with all its truncations ({n} runs): ok")
    return 0


def save(prefix, kind, data):
    path = f"{prefix}{kind}-{hashlib.sha1(data).hexdigest()}"
    with open(path, "wb") as f:
        f.write(data)
    return path


def fuzz_child(args, slot):
    """The fuzzing loop; the current input sits in `slot` (length, bytes) while it runs."""
    h = Harness()
    pool = read_corpus(args["corpus"])
    pool += state_seeds(h, pool)
    if not pool:
        pool = [b""]
    m = Mutator(args["seed"])
    start = time.monotonic()
    runs = 0
    new = 0
    for data in list(pool):  # the seeds first, as libFuzzer does
        h.seen.add(h.run(data))
    while time.monotonic() - start < args["secs"] and (not args["runs"] or runs < args["runs"]):
        data = m.mutate(m.r.choice(pool), pool)
        slot[0:4] = struct.pack("<I", len(data))
        slot[4:4 + len(data)] = data
        t0 = time.monotonic()
        try:
            sig = h.run(data)
            took = time.monotonic() - t0
            if took > args["timeout"]:
                raise AssertionError(f"one input took {took:.1f} s (more than -timeout="
                                     f"{args['timeout']})")
        except AssertionError as e:
            print(f"==ERROR: {e}", flush=True)
            path = save(args["prefix"], "crash", data)
            print(f"artifact_prefix='{args['prefix']}'; Test unit written to {path}", flush=True)
            print(f"Done {runs + 1} runs in {int(time.monotonic() - start)} second(s)", flush=True)
            os._exit(1)
        runs += 1
        if sig not in h.seen:
            h.seen.add(sig)
            pool.append(data)
            new += 1
            if args["new_dir"]:
                save(os.path.join(args["new_dir"], ""), "new", data)
        if runs % 20000 == 0:
            print(f"#{runs}\tpool: {len(pool)} outcomes: {len(h.seen)}", flush=True)
    print(f"#{runs}\tDONE pool: {len(pool)} new: {new} outcomes: {len(h.seen)} CPython "
          f"unraisable-error reports: {_audit['unraisable']}", flush=True)
    print(f"Done {runs} runs in {int(time.monotonic() - start)} second(s)", flush=True)
    os._exit(0)


def fuzz(args):
    """Fork the fuzzing loop; if the interpreter dies by a signal, save what it was running."""
    with tempfile.TemporaryFile() as f:
        f.truncate(4 + MAX_LEN)
        slot = mmap.mmap(f.fileno(), 4 + MAX_LEN)
        pid = os.fork()
        if pid == 0:
            try:
                fuzz_child(args, slot)
            except BaseException as e:  # the harness itself broke
                traceback.print_exc()
                print(f"==ERROR: the fuzzer failed: {type(e).__name__}: {e}", flush=True)
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            n = struct.unpack("<I", slot[0:4])[0]
            data = bytes(slot[4:4 + n])
            path = save(args["prefix"], "crash", data)
            print(f"==ERROR: the interpreter died of signal {os.WTERMSIG(status)}; the input "
                  f"is in {path}", flush=True)
            return 1
        return os.WEXITSTATUS(status)


def main(argv):
    if argv and argv[0] == "--replay":
        return replay(argv[1:])
    args = {"secs": 60, "prefix": "./", "seed": 1, "runs": 0, "new_dir": None, "corpus": [],
            "timeout": 20.0}
    dirs = []
    for a in argv:
        if a.startswith("-max_total_time="):
            args["secs"] = int(a.split("=", 1)[1])
        elif a.startswith("-artifact_prefix="):
            args["prefix"] = a.split("=", 1)[1]
        elif a.startswith("-seed="):
            args["seed"] = int(a.split("=", 1)[1])
        elif a.startswith("-timeout="):
            args["timeout"] = float(a.split("=", 1)[1])
        elif a.startswith("-runs="):
            args["runs"] = int(a.split("=", 1)[1])
        elif a.startswith("-"):
            pass  # other libFuzzer flags (-rss_limit_mb) do not apply
        else:
            dirs.append(a)
    if not dirs:
        print(__doc__, file=sys.stderr)
        return 2
    # libFuzzer's convention: the first directory receives the new inputs
    args["new_dir"] = dirs[0] if len(dirs) > 1 else None
    args["corpus"] = dirs
    print(f"INFO: seed {args['seed']}, {args['secs']} s", flush=True)
    return fuzz(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
