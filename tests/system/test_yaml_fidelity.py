"""Issue 17, part 1: text that every YAML reader reads back the same, and -o json.

Every value kind (the strings YAML 1.1 readers take for something else,
NaN and the infinities, big integers, bytes, nested maps with keys that
are not strings) is written by our YAML writer and read back by PyYAML
(safe_load, as a user would, plus a constructor for our `!P`; and with
doc/formats.md's snippet for all our tags, there and back) and by our
own reader; both must give the very value that was written.  Strings
that are not UTF-8 (from an old state file) show as `!nonutf8`, and
keys that Python's dict merges (1, 1.0, True) stay apart in -o json.  The JSON
writer is held against doc/formats.md's mapping with json.loads (and jq
where it is installed).

Two layers:
* the writers and the reader as a filter (build/tests/textconv): thousands
  of pseudo-random values, no server;
* the real outputs: `dkv data get` (one value, -r, -d, -m), `data
  monitor`, `internal dump` / `internal state`, the mount's `_`, `.meta`
  and `.watch` files, and `echo "$(cat _)" > _` leaving every value as it
  was.

Run with Debian's interpreter:

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_yaml_fidelity.py
"""

import base64
import errno
import json
import math
import os
import random
import shutil
import struct
import subprocess
import time

import msgpack
import pytest
import yaml

from conftest import BUILD_DIR
from dkvproto import Path, Raw, encode
from test_fs import mount_factory, read, sh, write_raw  # noqa: F401 (a fixture)

TEXTCONV = BUILD_DIR / "tests" / "textconv"


# ---------------------------------------------------------------------------
# readers


class UserLoader(yaml.SafeLoader):
    """PyYAML's safe loader and one constructor for distkv's `!P`: what a
    user adds to read dumps (doc/formats.md)."""


class UserCLoader(yaml.CSafeLoader):
    """The same on libyaml's parser (PyYAML's C speedups)."""


def _path(loader, node):
    return ("P", loader.construct_scalar(node))


UserLoader.add_constructor("!P", _path)
UserCLoader.add_constructor("!P", _path)
LOADERS = [UserLoader, UserCLoader]


def pyyaml_all(text, loader=UserLoader):
    return list(yaml.load_all(text, Loader=loader))


def pyyaml(text, loader=UserLoader):
    return yaml.load(text, Loader=loader)


def json_strict(text):
    """json.loads refusing NaN/Infinity, which is not JSON."""
    def bad(tok):
        raise ValueError("not JSON: %s" % tok)
    return json.loads(text, parse_constant=bad)


def textconv(mode, data):
    if not TEXTCONV.exists():
        pytest.skip("no %s (set DKV_BUILD)" % TEXTCONV)
    r = subprocess.run([str(TEXTCONV), mode], input=data, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def unpack_all(data):
    """Our msgpack items, decoded as the original client does (big ints,
    paths as ("P", elements))."""
    def hook(code, payload):
        if code == 2:
            return int.from_bytes(payload, "big")
        if code == 3:
            return Path(*unpack_all(payload))
        return msgpack.ExtType(code, payload)
    u = msgpack.Unpacker(raw=False, strict_map_key=False, ext_hook=hook, use_list=True)
    u.feed(data)
    return list(u)


# ---------------------------------------------------------------------------
# strict comparison


def kind(x):
    for t, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"),
                    (bytes, "bytes"), (dict, "map")):
        if isinstance(x, t):
            return name
    if isinstance(x, (list, tuple)):
        return "seq"
    if x is None:
        return "null"
    return type(x).__name__


def differ(a, b, where="$"):
    """None when a and b are the same value: same types (bool, int, float
    apart), NaN equal to NaN, -0.0 apart from 0.0, maps compared item by
    item in order (so NaN keys and key order count); else what differs."""
    ka, kb = kind(a), kind(b)
    if ka != kb:
        return "%s: %r (%s) != %r (%s)" % (where, a, ka, b, kb)
    if ka == "seq":
        if len(a) != len(b):
            return "%s: %d items != %d" % (where, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            d = differ(x, y, "%s[%d]" % (where, i))
            if d:
                return d
        return None
    if ka == "map":
        ia, ib = list(a.items()), list(b.items())
        if len(ia) != len(ib):
            return "%s: %d keys != %d: %r / %r" % (where, len(ia), len(ib), a, b)
        for (k1, v1), (k2, v2) in zip(ia, ib):
            d = differ(k1, k2, "%s key" % where) or differ(v1, v2, "%s[%r]" % (where, k1))
            if d:
                return d
        return None
    if ka == "float":
        if math.isnan(a) and math.isnan(b):
            return None
        if a != b or math.copysign(1, a) != math.copysign(1, b):
            return "%s: %r != %r" % (where, a, b)
        return None
    if a != b:
        return "%s: %r != %r" % (where, a, b)
    return None


def assert_same(got, want, what=""):
    d = differ(got, want)
    assert d is None, "%s%s\n got: %r\nwant: %r" % (what and what + ": ", d, got, want)


# ---------------------------------------------------------------------------
# values

# Strings that some reader takes for something else (issue 17), and their
# neighbours, which must stay strings too.
TRICKY = [
    "ON", "On", "on", "OFF", "off", "yes", "Yes", "YES", "no", "No", "NO", "y", "Y", "n", "N",
    "true", "True", "FALSE", "null", "Null", "NULL", "~", "", " ", "12:30", "12:30:45",
    "190:20:30.15", "1e3", "1E3", "1e+3", "1.0e+16", "0o17", "0x1F", "0X1f", "0b101", "017",
    "08", "1_000", "1,000", ".5", "+1", "-1", "+.5", "1.", "1.2.3", "192.168.0.1", ".", "-.", ".inf",
    "-.inf", "+.INF", ".nan", ".NaN", "-.nan", "nan", "inf", "2001-12-14",
    "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5", "2002-12-14", "=", "<<",
    ":sym", "::", ":", "-", "--", "---", "...", "- a", "? a", "a: b", "a #b", "#c", "&a", "*a",
    "!a", "!!str", "|", ">", "%x", "@x", "`x", "'", '"', "[a]", "{a: b}", "a,b", "Duh",
    "x\n", "\n", "a\n\nb", "a\nb", " lead", "trail ", "tab\there", "\r", "a\r\nb",
    "\x00", "\x01\x7f", "\u00e4\u00f6\u00fc", "\u20ac 5", "\U0001f600", "\x85", "a\u2028b",
    "\ufeffbom", "\xa0", "very long " * 30,
]

FLOATS = [0.0, -0.0, 1.0, -1.5, 0.1, 1e16, 1.25e16, 1e100, 2.5e-7, 5e-324,
          1.7976931348623157e308, 123456789012345.6, math.inf, -math.inf, math.nan]

INTS = [0, 1, -1, 127, 128, 255, 256, 65535, 65536, 2**31, 2**32, -2**31 - 1, 2**63 - 1,
        2**63, 2**64 - 1, 2**64, 2**100, -2**63, 10**40, 2**8192 - 1, 2**8200 + 12345]

BYTES = [b"", b"\x00", b"abc", b"ON", b"\x01ab", bytes(range(57)), bytes(range(58)),
         bytes(range(256)) * 2]


class Gen:
    """Pseudo-random values of every kind, reproducible from a seed."""

    PIECES = ["a", "Z", " ", ":", ": ", "#", " #", "-", "- ", "?", "\n", "'", '"', "\\",
              "\t", "0", "1", "9", ".", "e", "E", "x", "o", "b", "_", ",", "+", "true",
              "null", "~", "!", "&", "*", "|", ">", "%", "@", "`", "[", "]", "{", "}",
              "\r", "\x01", "\x7f", "\u00e4", "\u20ac", "\U0001f600", "\x85", "\u2028",
              "\ufeff", "\xa0", ".inf", "0x", "0o", "=", "<<", "yes", "ON", "n", "12:30",
              "2001-12-14", "y"]

    def __init__(self, seed):
        self.r = random.Random(seed)

    def text(self):
        r = self.r
        if r.random() < 0.3:
            return r.choice(TRICKY)
        return "".join(r.choice(self.PIECES) for _ in range(r.randrange(6)))

    def scalar(self):
        r = self.r
        k = r.randrange(8)
        if k == 0:
            return r.choice([None, True, False])
        if k == 1:
            return r.choice(INTS) if r.random() < 0.3 else r.randrange(-2**63, 2**64)
        if k == 2:
            if r.random() < 0.4:
                return r.choice(FLOATS)
            return struct_float(r.getrandbits(64))
        if k == 3:
            return r.choice(BYTES) if r.random() < 0.3 else r.randbytes(r.randrange(70))
        return self.text()

    def key(self, taken):
        """A key equal to none in taken in Python's eyes (1, 1.0 and True
        are one dict key there), of a kind PyYAML can hash."""
        r = self.r
        for _ in range(20):
            k = r.choice([self.text, self.text, lambda: r.randrange(-5, 300),
                          lambda: r.choice([None, True, False]),
                          lambda: r.randrange(-40, 40) / 8,
                          lambda: r.choice([b"", b"ab c", b"\x00\xff"])])()
            if isinstance(k, float) and k.is_integer():
                continue
            if not any(k == t for t in taken):
                return k
        return None

    def value(self, depth=0):
        r = self.r
        k = 0 if depth > 3 else r.randrange(4)
        if k < 2:
            return self.scalar()
        if k == 2:
            return [self.value(depth + 1) for _ in range(r.randrange(5))]
        d = {}
        for _ in range(r.randrange(6)):
            key = self.key(list(d))
            if key is not None:
                d[key] = self.value(depth + 1)
        return d


def struct_float(bits):
    return struct.unpack(">d", bits.to_bytes(8, "big"))[0]


# ---------------------------------------------------------------------------
# the JSON mapping of doc/formats.md, written out in Python


def control(s):
    return any(c < " " or "\x7f" <= c <= "\x9f" or c in "\u2028\u2029" for c in s)


def colon_key(k):
    """The colon notation of the keys Gen makes (doc/cli.md)."""
    if k is None:
        return ":n"
    if isinstance(k, bool):
        return ":t" if k else ":f"
    if isinstance(k, int):
        return ":%d" % k
    if isinstance(k, float):
        return ":" + repr(k)
    if isinstance(k, bytes):
        if all(0x20 <= c < 0x7f for c in k):
            return ":v" + k.decode()
        return ":y" + k.hex()
    assert isinstance(k, str) and k.startswith(":")
    return ":u" + k.encode().hex() if control(k) else ":" + k


def json_key(k):
    if isinstance(k, str) and not k.startswith(":"):
        return k
    return colon_key(k)


def json_of(v):
    """The JSON value that doc/formats.md says v is written as."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return {":int": "0x%x" % v} if v >= 2**8192 else v
    if isinstance(v, float):
        if math.isnan(v):
            return {":float": "nan"}
        if math.isinf(v):
            return {":float": "inf" if v > 0 else "-inf"}
        return v
    if isinstance(v, bytes):
        return {":binary": base64.b64encode(v).decode()}
    if isinstance(v, Path):
        return {":path": [json_of(e) for e in v]}
    if isinstance(v, (list, tuple)):
        return [json_of(e) for e in v]
    if isinstance(v, dict):
        return {json_key(k): json_of(x) for k, x in v.items()}
    raise TypeError(v)


# ---------------------------------------------------------------------------
# 1. the writers and the reader, on many values (no server)


def corpus(n=1500, seed=17):
    g = Gen(seed)
    vals = [t for t in TRICKY] + FLOATS + INTS + BYTES
    vals.append({k: i for i, k in enumerate(TRICKY)})        # tricky keys
    vals.append({1: "one", 2.5: "two and a half", None: "none", True: "yes",
                 b"\x00": "bytes", "1": "the string 1", "ON": 1, "": [], "x": {}})
    vals.append([[[[{"deep": [1, {2: [3.5, b"4"]}]}]]]])
    vals += [g.value() for _ in range(n)]
    return vals


@pytest.mark.parametrize("loader", LOADERS, ids=["SafeLoader", "CSafeLoader"])
def test_pyyaml_reads_what_we_write(loader):
    """Every value of the corpus, written as YAML, is read by PyYAML
    (YAML 1.1 rules) as the very value written."""
    vals = corpus()
    text = textconv("yaml", b"".join(encode(v) for v in vals)).decode()
    docs = pyyaml_all(text, loader)
    assert len(docs) == len(vals)
    for v, d in zip(vals, docs):
        assert_same(d, v, "PyYAML read %r" % (v,))


def test_our_reader_reads_what_we_write():
    """The same text read by our reader gives exactly the msgpack that was
    written (byte for byte: the canonical encoding), paths included."""
    vals = corpus()
    vals += [Path(), Path("a", 1, None, True, 2.5, b"x", (1, "b"), "a.b", ":c", "")]
    data = b"".join(encode(v) for v in vals)
    back = textconv("parse", textconv("yaml", data))
    if back != data:
        got = unpack_all(back)
        assert len(got) == len(vals)
        for g, v in zip(got, vals):
            assert encode(g) == encode(v), differ(g, v) or (g, v)
        assert False, "the same values, but not the same bytes"


def test_json_is_the_documented_mapping():
    """-o json's writer: one strict JSON line per value, exactly the
    mapping of doc/formats.md (bytes, NaN/inf, huge integers, paths,
    keys that are not strings)."""
    vals = corpus(800, seed=4711)
    vals += [Path(), Path("a", 1, None, b"\x00", (1, "b"))]
    lines = textconv("json", b"".join(encode(v) for v in vals)).decode().split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) == len(vals)
    for v, line in zip(vals, lines):
        assert "\n" not in line
        assert_same(json_strict(line), json_of(v), "JSON of %r: %s" % (v, line[:200]))


def test_jq_reads_our_json():
    """jq takes every line (it is strict JSON), and sees bytes and
    non-string keys as documented."""
    jq = shutil.which("jq")
    if not jq:
        pytest.skip("jq is not installed")
    vals = corpus(300, seed=99)
    out = textconv("json", b"".join(encode(v) for v in vals))
    r = subprocess.run([jq, "-c", "."], input=out, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(b"\n") == len(vals)
    doc = encode({"b": b"\x01ab", 5: "five", "n": math.nan})
    r = subprocess.run([jq, "-r", '.b[":binary"], .[":5"], .n[":float"]'],
                       input=textconv("json", doc), capture_output=True, timeout=60)
    assert r.stdout.decode().split() == ["AWFi", "five", "nan"], r


def test_what_pyyaml_cannot_hold_is_an_error():
    """Our own tags for proxies and other ext types, and paths without the
    user's constructor, stop PyYAML with an error; nothing is misread."""
    for v in (msgpack.ExtType(4, b"ctx"), msgpack.ExtType(7, b"\x01"), Path("a", "b")):
        text = textconv("yaml", msgpack.packb(v) if not isinstance(v, Path) else encode(v))
        with pytest.raises(yaml.constructor.ConstructorError):
            yaml.safe_load(text)
        back = textconv("parse", text)
        assert back == (msgpack.packb(v) if not isinstance(v, Path) else encode(v))


# ---------------------------------------------------------------------------
# doc/formats.md's snippet for our tags, non-UTF-8 strings, keys Python merges

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def formats_snippet():
    """The indented block of doc/formats.md that registers our tags."""
    import textwrap
    with open(os.path.join(ROOT, "doc", "formats.md")) as f:
        blocks, cur = [], []
        for line in f:
            if line.startswith("    ") or (cur and line.strip() == ""):
                cur.append(line)
            else:
                if cur:
                    blocks.append("".join(cur))
                cur = []
    block = [b for b in blocks if "DistKVLoader" in b]
    assert len(block) == 1, "doc/formats.md: no one snippet with DistKVLoader"
    return textwrap.dedent(block[0])


def run_snippet(text):
    """Run the snippet as a user would, with `text` given: its namespace
    (docs: what it read, text: what it wrote back)."""
    ns = {"text": text}
    exec(compile(formats_snippet(), "doc/formats.md", "exec"), ns)
    return ns


NONUTF8 = [Raw(b"\xa3a\xffb"), Raw(b"\xa2\xc0\x80"), Raw(b"\xa3\xed\xa0\x80"),
           Raw(b"\xd9\x28" + b"x" * 39 + b"\xff")]

# what PyYAML's dumper (YAML 1.1) writes plain and a YAML 1.2 reader takes
# for a number (doc/formats.md): left out of the trip back
YAML11_PLAIN = {"1e3", "1E3", "1e+3", "0o17", "08", "+.5"}


def test_formats_snippet_carries_every_kind():
    """doc/formats.md's constructors for !P, !R, !ext and !nonutf8: with
    them PyYAML reads every kind distkv writes (ours as Tagged(tag,
    text)), and what its dumper writes back our reader reads as the very
    same msgpack, paths, proxies, ext values and non-UTF-8 strings
    included."""
    tricky = [t for t in TRICKY if t not in YAML11_PLAIN]
    vals = tricky + FLOATS + INTS + BYTES + [
        {k: i for i, k in enumerate(tricky)},
        {1: "one", 2.5: [b"x", None], None: {True: "t", "ON": "off"}, b"k": -1},
        Path(), Path("a", 1, None, True, 2.5, b"x", (1, "b"), "a.b", ":c", ""),
        msgpack.ExtType(4, b"ctx"), msgpack.ExtType(7, b"\x01\xab"), msgpack.ExtType(4, b"\xff"),
        {Path("k", 5): [msgpack.ExtType(9, b""), Path("v")]},
    ] + NONUTF8 + [{NONUTF8[0]: [NONUTF8[1]]}]
    data = b"".join(msgpack.packb(v) if isinstance(v, msgpack.ExtType) else encode(v)
                    for v in vals)
    ns = run_snippet(textconv("yaml", data).decode())
    docs, Tagged = ns["docs"], ns["Tagged"]
    assert len(docs) == len(vals)
    for v, d in zip(vals, docs):
        if isinstance(v, Path):
            assert isinstance(d, Tagged) and d.tag == "!P", d
        elif isinstance(v, msgpack.ExtType):
            assert isinstance(d, Tagged) and d.tag in ("!R", "!ext"), d
        elif isinstance(v, Raw):
            assert d == Tagged("!nonutf8", v.data[1:].hex() if v.data[0] != 0xd9
                               else v.data[2:].hex()), d
        elif not isinstance(v, dict) or not any(isinstance(k, (Path, Raw)) for k in v):
            assert_same(d, v, "the snippet read %r" % (v,))
    assert docs[vals.index(Path("a", 1, None, True, 2.5, b"x", (1, "b"), "a.b", ":c", ""))] == \
        Tagged("!P", "a.:1.:n.:t.:2:.5.:vx.:(:1,b).a:.b.:::c.:e")
    back = textconv("parse", ns["text"].encode())
    assert back == data, "PyYAML's dump of what it read is another value for our reader"


def test_strings_that_are_not_utf8_in_text():
    """!nonutf8 and {":nonutf8": ...}: our reader reads back the same
    string, PyYAML refuses it (like our other tags), JSON readers see the
    marker; a proxy whose name is not text is shown as a raw ext."""
    for raw in NONUTF8:
        y = textconv("yaml", raw.data)
        assert y.split(b"\n")[1].startswith(b"!nonutf8 "), y  # after textconv's "---"
        assert textconv("parse", y) == raw.data
        with pytest.raises(yaml.constructor.ConstructorError):
            yaml.safe_load(y)
        j = json_strict(textconv("json", raw.data))
        assert list(j) == [":nonutf8"] and bytes.fromhex(j[":nonutf8"]) == \
            raw.data[1 if raw.data[0] != 0xd9 else 2:]
    proxy = msgpack.packb(msgpack.ExtType(4, b"n\xff"))
    assert textconv("yaml", proxy).endswith(b"\n!ext 4:6eff\n")
    assert json_strict(textconv("json", proxy)) == {":ext": [4, "bv8="]}
    # as a map key: JSON writes the key in the colon notation
    doc = encode({NONUTF8[0]: NONUTF8[1]})
    assert json_strict(textconv("json", doc)) == {":u61ff62": {":nonutf8": "c080"}}
    assert textconv("parse", textconv("yaml", doc)) == doc


def test_keys_python_merges_stay_apart():
    """1, 1.0 and True are one key to a Python dict (PyYAML keeps the
    last); our YAML writes all three, our reader keeps them, and -o json
    keeps them apart as ":1", ":1.0", ":t"."""
    doc = b"\x86" + encode(1) + encode("int") + encode(1.0) + encode("float") + \
        encode(True) + encode("bool") + encode(0) + encode("zero") + encode(False) + \
        encode("false") + encode(0.0) + encode("0.0")
    y = textconv("yaml", doc)
    assert textconv("parse", y) == doc
    assert yaml.safe_load(y) == {1: "bool", 0: "0.0"}    # Python's dict: one key each
    j = textconv("json", doc).decode()
    assert json_strict(j) == {":1": "int", ":1.0": "float", ":t": "bool", ":0": "zero",
                              ":f": "false", ":0.0": "0.0"}, j


def test_bad_text_is_refused():
    """Malformed text and the old tags: our reader refuses what is wrong
    with a message, and still reads !bin and !hex."""
    assert unpack_all(textconv("parse", b"- !bin abc\n- !hex 00:ff\n- !!binary AA==\n")) == \
        [[b"abc", b"\x00\xff", b"\x00"]]
    for bad in (b"!!binary zz\n", b"[1,\n", b"!hex 0\n", b"a: 1\na: 2\n", b"!foo x\n"):
        r = subprocess.run([str(TEXTCONV), "parse"], input=bad, capture_output=True)
        assert r.returncode == 1 and b"line " in r.stderr, (bad, r)


# ---------------------------------------------------------------------------
# 2. the real outputs

SAMPLES = {
    "lamp": "ON",
    "answer": "yes",
    "short": "n",
    "time": "12:30",
    "exp": "1e3",
    "oct": "0o17",
    "hex": "0x1F",
    "frac": ".5",
    "plus": "+1",
    "date": "2001-12-14",
    "eq": "=",
    "merge": "<<",
    "tilde": "~",
    "empty": "",
    "lines": "a\nb\n",
    "nan": math.nan,
    "inf": math.inf,
    "minf": -math.inf,
    "negzero": -0.0,
    "float": 1e16,
    "big": 2**64 + 5,
    "huge": 2**8200 + 1,
    "neg": -2**63,
    "bytes": b"\x01ab",
    "nobytes": b"",
    "longbytes": bytes(range(200)),
    "map": {1: "one", 2.5: [b"x", None], None: {True: "t", "ON": "off"}, b"k": -1,
            "12:30": "x"},
    "list": ["yes", 1, 1.5, None, [], {}],
}


def sample_paths():
    return [("yf", k) for k in SAMPLES]


@pytest.fixture
def loaded(mount_factory):
    fs = mount_factory()
    for k, v in SAMPLES.items():
        fs.set(("yf", k), v)
    return fs


def test_data_get_and_dumps(loaded):
    """`data get` of each value, `-r` (paths and values), `-d` (element
    keys that are not strings) and `-m`: PyYAML reads the value stored."""
    srv = loaded.server
    for k, v in SAMPLES.items():
        out = srv.dkv("data", "get", "yf", k).stdout
        assert_same(pyyaml(out), v, "data get yf %s" % k)
        assert_same(pyyaml(out, UserCLoader), v, "data get yf %s" % k)
    docs = pyyaml_all(srv.dkv("data", "get", "-r", "yf").stdout)
    assert [d["path"] for d in docs] == [("P", "yf." + k) for k in SAMPLES]
    for k, d in zip(SAMPLES, docs):
        assert_same(d["value"], SAMPLES[k], "get -r: %s" % k)
    tree = pyyaml(srv.dkv("data", "get", "-d", "_", "yf").stdout)
    assert_same({k: t["_"] for k, t in tree.items()}, SAMPLES, "get -d _")
    # element keys that are not strings, in -d's nesting
    srv.dkv("data", "set", "-v", "ON", "yk", ":5", ":t", ":n", ":1.5", ":vON", "yes")
    tree = pyyaml(srv.dkv("data", "get", "-d", "_", "yk").stdout)
    assert_same(tree, {5: {True: {None: {1.5: {b"ON": {"yes": {"_": "ON"}}}}}}})
    meta = pyyaml(srv.dkv("data", "get", "-m", "yf", "lamp").stdout)
    assert meta["value"] == "ON" and isinstance(meta["tock"], int)


def test_json_outputs(loaded):
    """-o json / --json on data get (one value, -r as JSON lines, -d, -m),
    internal dump and internal state: strict JSON, the documented
    mapping, the same data as the YAML."""
    srv = loaded.server
    for k, v in SAMPLES.items():
        out = srv.dkv("data", "get", "-o", "json", "yf", k).stdout
        assert out.endswith("\n") and out.count("\n") == 1
        assert_same(json_strict(out), json_of(v), "data get -o json yf %s" % k)
    lines = srv.dkv("data", "get", "-r", "--json", "yf").stdout.splitlines()
    assert_same([json_strict(x) for x in lines],
                [{"path": ["yf", k], "value": json_of(v)} for k, v in SAMPLES.items()])
    tree = json_strict(srv.dkv("data", "get", "-d", "_", "--json", "yf").stdout)
    assert_same(tree, {k: {"_": json_of(v)} for k, v in SAMPLES.items()})
    meta = json_strict(srv.dkv("data", "get", "-m", "--json", "yf", "lamp").stdout)
    assert meta["value"] == "ON" and meta["chain"]["node"] == srv.node
    # internal dump and state: the JSON is the YAML's data
    for cmd in (("internal", "dump"), ("internal", "state")):
        y = pyyaml(srv.dkv(*cmd).stdout)
        j = json_strict(srv.dkv(*cmd, "-o", "json").stdout)
        if cmd[1] == "state":   # the tock moves on between the two calls
            y.pop("tock"), j.pop("tock")
        assert_same(j, json_of(y), " ".join(cmd))
    r = srv.dkv("data", "get", "-o", "xml", "yf", "lamp", check=False)
    assert r.returncode == 2 and "unknown output format 'xml'" in r.stderr
    # nothing stored: nothing printed, in either format
    assert srv.dkv("data", "get", "--json", "yf", "nothing").stdout == ""


def test_mount_files(loaded):
    """The mount's `_` files read as the stored values in PyYAML, `.meta`
    reads with a string time, and `echo "$(cat _)" > _` changes no value
    (our reader gives back what was written)."""
    fs = loaded
    for k, v in SAMPLES.items():
        text = read(fs.path("yf", k, "_"))
        assert_same(pyyaml(text), v, "yf/%s/_" % k)
    for k, v in SAMPLES.items():
        sh('echo "$(cat _)" > _', cwd=fs.path("yf", k))
        assert_same(fs.get("yf", k), v, "after echo into yf/%s/_" % k)
    meta = pyyaml(read(fs.path("yf", "lamp", ".meta")))
    assert isinstance(meta["changed"], str) and meta["changed"].endswith("Z"), meta
    assert meta["chain"][0]["node"] == fs.server.node


def test_watch_and_monitor(loaded):
    """`.watch` streams and `data monitor` (YAML and JSON lines) show the
    tricky values as PyYAML reads them."""
    fs = loaded
    srv = fs.server
    fd = os.open(fs.path("yf", ".watch"), os.O_RDONLY | os.O_NONBLOCK)
    mon = subprocess.Popen(srv.client_argv("data", "monitor", "yf"), stdout=subprocess.PIPE)
    monj = subprocess.Popen(srv.client_argv("data", "monitor", "-o", "json", "yf"),
                            stdout=subprocess.PIPE)
    try:
        time.sleep(0.5)   # both monitors subscribed
        changes = [("lamp", "OFF"), ("answer", "no"), ("nan", math.nan),
                   ("bytes", b"\xff\x00"), ("map", {1: "y", None: "12:30"})]
        for k, v in changes:
            fs.set(("yf", k), v)
        watched, deadline = b"", time.monotonic() + 10
        while watched.count(b"\ntock: ") < len(changes) or not watched.endswith(b"\n"):
            assert time.monotonic() < deadline, watched
            try:
                watched += os.read(fd, 65536)
            except BlockingIOError:
                time.sleep(0.05)
        docs = pyyaml_all(watched.decode())
        assert [d["path"] for d in docs] == [("P", k) for k, _ in changes]
        for (k, v), d in zip(changes, docs):
            assert_same(d["value"], v, ".watch %s" % k)
            assert d["node"] == srv.node
        time.sleep(0.3)
    finally:
        os.close(fd)
        for p in (mon, monj):
            p.terminate()
    out, outj = mon.communicate(timeout=10)[0], monj.communicate(timeout=10)[0]
    docs = pyyaml_all(out.decode())
    lines = [json_strict(x) for x in outj.decode().splitlines()]
    assert len(docs) == len(lines) == len(changes), (out, outj)
    for (k, v), d, j in zip(changes, docs, lines):
        assert d["path"] == ("P", "yf." + k)
        assert_same(d["value"], v, "monitor %s" % k)
        assert_same(j, {"path": ["yf", k], "value": json_of(v)}, "monitor -o json %s" % k)


def old_state_file(path, entries, node="old"):
    """A state file (doc/formats.md) as an older distkv or another program
    could have written it: entries is a list of (path, raw value bytes)."""
    import zlib

    def record(*items):
        body = encode(list(items) + [0])[:-1]    # the array's head counts one more item
        return body + msgpack.packb(zlib.crc32(body))
    out = msgpack.packb({"distkv-log": 1, "node": node, "created": time.time(), "kind": "dump"})
    out += record(3, len(entries), {node: [len(entries), [[1, len(entries) + 1]], []]})
    for i, (p, raw) in enumerate(entries, 1):
        out += record(1, Path(*p), i, [[node, i]], Raw(raw))
    path.write_bytes(out)
    return path


def test_stored_strings_that_are_not_utf8(mount_factory, tmp_path):
    """Strings that are not UTF-8 from an old state file: every output
    shows them exactly (!nonutf8, {":nonutf8": ...}), never U+FFFD; plain
    PyYAML refuses them, the snippet reads them; the mount shows them and
    refuses to store one (text must be UTF-8), leaving the value as it
    was."""
    state = old_state_file(tmp_path / "old.dkv", [
        (("nu", "v"), b"\xa3a\xffb"),
        (("nu", "m"), b"\x82\xa1k\x92\x01\xa2\xc0\x80\xa2\xfe\xfe\xa2ok"),
        (("nu", Raw(b"\xa2\xff\xfe")), b"\xa1x"),
    ])
    fs = mount_factory(server_args=("-l", str(state)))
    srv = fs.server
    out = srv.dkv("data", "get", "nu", "v").stdout
    assert out == "!nonutf8 61ff62\n", out
    assert textconv("parse", out.encode()) == b"\xa3a\xffb"
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load(out)
    assert json_strict(srv.dkv("data", "get", "-o", "json", "nu", "m").stdout) == \
        {"k": [1, {":nonutf8": "c080"}], ":ufefe": "ok"}
    dump = srv.dkv("data", "get", "-r", "nu").stdout
    assert "\ufffd" not in dump
    ns = run_snippet(dump)
    T = ns["Tagged"]
    assert [d["path"] for d in ns["docs"]] == [T("!P", "nu.v"), T("!P", "nu.m"),
                                              T("!P", "nu.:ufffe")], dump
    assert ns["docs"][1]["value"] == {"k": [1, T("!nonutf8", "c080")], T("!nonutf8", "fefe"): "ok"}
    with pytest.raises(yaml.constructor.ConstructorError):
        list(yaml.safe_load_all(dump))
    lines = [json_strict(x) for x in srv.dkv("data", "get", "-r", "--json", "nu").stdout.splitlines()]
    assert lines[0] == {"path": ["nu", "v"], "value": {":nonutf8": "61ff62"}}
    assert lines[2]["path"] == ["nu", {":nonutf8": "fffe"}], lines
    # the mount: shown exactly; written back, refused, and the value stays
    assert read(fs.path("nu", "v", "_")) == "!nonutf8 61ff62\n"
    with pytest.raises(OSError) as e:
        write_raw(fs.path("nu", "v", "_"), read(fs.path("nu", "v", "_")))
    assert e.value.errno == errno.EINVAL
    assert srv.dkv("data", "get", "nu", "v").stdout == "!nonutf8 61ff62\n"
    assert "not valid UTF-8 (!nonutf8)" in srv.log()
    assert read(fs.path("nu", ":ufffe", "_")) == "x\n"


def test_keys_python_merges_through_the_server(server):
    """A value whose map has the keys 1, 1.0 and True: `data get` writes
    all three (PyYAML keeps one, as documented), -o json keeps them apart."""
    with server.connect() as p:
        m = Raw(b"\x83" + encode(1) + encode("int") + encode(1.0) + encode("float") +
                encode(True) + encode("bool"))
        assert p.request("set_value", path=Path("mk"), value=m).get("changed") is True
    out = server.dkv("data", "get", "mk").stdout
    assert textconv("parse", out.encode()) == m.data
    assert yaml.safe_load(out) == {1: "bool"}
    assert json_strict(server.dkv("data", "get", "--json", "mk").stdout) == \
        {":1": "int", ":1.0": "float", ":t": "bool"}
