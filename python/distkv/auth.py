"""Logging in: the ``connect.auth`` text and the sealed password.

``connect.auth`` is what ``distkv client -a`` takes: ``"_test name=joe"``,
``"password name=joe password=SECRET"``, ``"password name=joe
password?=Prompt"`` (asked for on the terminal, and only when the server
wants a password), or ``"root"`` (no login).  A dict
``{"method": ..., "name": ..., "password": ...}`` works too.

The password never crosses the wire in clear: it is sealed with
libsodium's ``crypto_box_seal`` to the key the server made for this
connection (``auth_key``).  We call libsodium through ctypes rather than
use python3-nacl: the server already depends on libsodium, so this needs
no package beyond what distkv itself needs, and the package stays
importable with the standard library, anyio and msgpack only.  The
library is loaded on the first password login, not at import.
"""

import ctypes
import ctypes.util

from .exceptions import ClientError

__all__ = ["AuthSpec", "parse_auth", "seal"]

METHODS = ("root", "_test", "password")
SEALBYTES = 48  # crypto_box_SEALBYTES: an X25519 public key and a MAC


class AuthSpec:
    """A parsed login: ``method``, ``name``, ``password``, ``prompt``."""

    __slots__ = ("method", "name", "password", "prompt")

    def __init__(self, method, name=None, password=None, prompt=None):
        self.method = method
        self.name = name
        self.password = password
        self.prompt = prompt

    def __repr__(self):  # never shows the password
        return "AuthSpec(%r, name=%r%s)" % (self.method, self.name,
                                            ", password=..." if self.password else "")


def parse_auth(spec):
    """An AuthSpec from connect.auth's text (or dict); None for none.
    Raises ClientError for a malformed one."""
    if spec is None or isinstance(spec, AuthSpec):
        return spec
    if isinstance(spec, dict):
        words = dict(spec)
        method = words.pop("method", None)
        prompt = words.pop("password?", None)
    elif isinstance(spec, str):
        parts = spec.split()
        if not parts:
            return None
        method, words, prompt = parts[0], {}, None
        for w in parts[1:]:
            k, eq, v = w.partition("=")
            if not eq or not k:
                raise ClientError("auth: %r is not key=value" % w)
            if k == "password?":
                prompt = v
            else:
                words[k] = v
    else:
        raise ClientError("auth must be a string such as '_test name=joe', not %r" % (spec,))
    if method not in METHODS:
        raise ClientError("auth: unknown method %r (known: %s)" % (method, ", ".join(METHODS)))
    allowed = {"root": (), "_test": ("name",), "password": ("name", "password")}[method]
    for k in words:
        if k not in allowed:
            raise ClientError("auth: method %s takes no %r" % (method, k))
    if prompt is not None and method != "password":
        raise ClientError("auth: method %s takes no 'password?'" % method)
    if method != "root" and not words.get("name"):
        raise ClientError("auth: method %s needs name=USER" % method)
    return AuthSpec(method, words.get("name"), words.get("password"), prompt)


_sodium = []  # the loaded library, once a password login needed it


def _lib():
    if not _sodium:
        lib = None
        for name in ("libsodium.so.23", ctypes.util.find_library("sodium")):
            if name:
                try:
                    lib = ctypes.CDLL(name)
                    break
                except OSError:
                    pass
        if lib is None:
            raise ClientError("password login: libsodium (libsodium23) is not installed")
        if lib.sodium_init() < 0:
            raise ClientError("password login: sodium_init failed")
        lib.crypto_box_seal.argtypes = (ctypes.c_char_p, ctypes.c_char_p,
                                        ctypes.c_ulonglong, ctypes.c_char_p)
        lib.crypto_box_seal.restype = ctypes.c_int
        _sodium.append(lib)
    return _sodium[0]


def seal(pubkey, secret):
    """crypto_box_seal(secret, pubkey): the anonymous box only the holder
    of pubkey's private key can open."""
    if not isinstance(pubkey, bytes) or len(pubkey) != 32:
        raise ClientError("the server's auth_key is not a 32-byte key")
    if isinstance(secret, str):
        secret = secret.encode()
    out = ctypes.create_string_buffer(SEALBYTES + len(secret))
    if _lib().crypto_box_seal(out, secret, len(secret), pubkey) != 0:
        raise ClientError("crypto_box_seal failed")
    return out.raw
