"""The command line's auth and acl groups against a real server.

Every test starts its own server (conftest's server_factory) and runs
`distkv client auth ...` / `distkv client acl ...` against it: each
command with good and bad input, passwords read from standard input,
that no output ever holds a hash or the clear password while the
internal tree holds only an argon2id hash, and the tutorial's
authorization and ACL sections run line by line in bash
(../shared/spec/tutorial.txt; `distkv` there is a shell function that
adds this server's port, so the lines themselves stay as written).

DKV_BUILD names the meson build directory (default: ../../build).
"""

import os
import subprocess

import pytest

import dkvyaml
from conftest import BUILD_DIR

TOOLS = str(BUILD_DIR / "tools")
PASSWORD = "test123"


@pytest.fixture
def srv(server_factory):
    """A fresh server without a root value (the tutorial's `data get`
    prints nothing)."""
    return server_factory(init=None)


@pytest.fixture
def cli(srv):
    """cli(*args, input=None) -> CompletedProcess of `distkv client ARGS`
    (not checked: tests look at returncode, stdout and stderr)."""

    def _cli(*args, input=None):
        return srv.dkv(*args, check=False, input=input)

    return _cli


def ok(res, stdout=None):
    assert res.returncode == 0, (res.args, res.stdout, res.stderr)
    if stdout is not None:
        assert res.stdout == stdout, res.args
    return res


def fails(res, status, *words):
    assert res.returncode == status, (res.args, res.returncode, res.stdout, res.stderr)
    for w in words:
        assert w in res.stderr, (res.args, res.stderr)
    return res


def no_secrets(*results):
    for r in results:
        for text in (r.stdout, r.stderr):
            assert PASSWORD not in text
            assert "argon2" not in text
            assert "$argon" not in text


# ---- usage, no server needed ----


def test_help_and_usage(cli):
    res = ok(cli("auth", "--help"))
    for cmd in ("list", "init", "user", "-m, --method METHOD"):
        assert cmd in res.stdout
    res = ok(cli("auth", "user", "--help"))
    for cmd in ("add", "list", "get", "modify", "delete"):
        assert "  %s " % cmd in res.stdout
    res = ok(cli("acl", "--help"))
    for cmd in ("set", "get", "list", "dump", "delete", "test"):
        assert "  %s " % cmd in res.stdout
    assert ok(cli("acl", "set", "--help")).stdout.startswith(
        "usage: distkv client acl set NAME -a [+|-]MODES [PATH...]")
    assert "--aux KEY=VALUE" in ok(cli("auth", "-m", "password", "user", "add", "--help")).stdout
    fails(cli("auth"), 2)
    fails(cli("auth", "frob"), 2, "unknown command 'auth frob'")
    fails(cli("auth", "user"), 2)
    fails(cli("auth", "user", "frob"), 2, "unknown command 'auth user frob'")
    fails(cli("acl", "frob"), 2, "unknown command 'acl frob'")
    fails(cli("auth", "-x", "list"), 2)
    fails(cli("auth", "list", "extra"), 2, "unexpected argument 'extra'")


def test_unknown_method(cli):
    for args in (("user", "list"), ("init",), ("user", "add", "name=joe")):
        res = fails(cli("auth", "-m", "bogus", *args), 2,
                    "unknown auth method 'bogus' (known: root, _test, password)")
        assert res.stdout == ""


def test_method_needed(cli):
    fails(cli("auth", "user", "list"), 2, "say which method with -m")
    ok(cli("auth", "-m", "_test", "user", "add", "name=joe"))
    # the only method with users is taken
    ok(cli("auth", "user", "list"), "joe\n")
    ok(cli("auth", "-m", "password", "user", "add", "name=ann", "password=" + PASSWORD))
    fails(cli("auth", "user", "list"), 2, "say which method with -m")


# ---- users ----


def test_auth_list(cli):
    ok(cli("auth", "list"), "")
    ok(cli("auth", "-m", "_test", "user", "add", "name=joe"))
    ok(cli("auth", "-m", "password", "user", "add", "name=ann", "password=" + PASSWORD))
    assert sorted(ok(cli("auth", "list")).stdout.splitlines()) == ["_test", "password"]


def test_password_user_from_stdin(cli, srv, tmp_path):
    add = ok(cli("auth", "-m", "password", "user", "add", "name=joe", "password?=Code",
                 input=PASSWORD + "\n"), "")
    lst = ok(cli("auth", "-m", "password", "user", "list"), "joe\n")
    get = ok(cli("auth", "-m", "password", "user", "get", "joe"))
    assert dkvyaml.load(get.stdout) == {"ident": "joe", "aux": None}
    verbose = ok(cli("auth", "-m", "password", "user", "list", "-v"))
    assert dkvyaml.load_all(verbose.stdout) == [
        {"typ": "password", "ident": "joe", "aux": None}]
    no_secrets(add, lst, get, verbose)

    # the internal tree holds the hash, never the password
    dump = ok(cli("internal", "dump"))
    assert PASSWORD not in dump.stdout
    rec = dkvyaml.load(dump.stdout)["auth"]["password"]["user"]["joe"]["_"]
    hashed = rec["password"]
    hashed = hashed.decode() if isinstance(hashed, bytes) else hashed
    assert hashed.startswith("$argon2id$")
    # and so does the saved state
    state = tmp_path / "state.dkv"
    ok(cli("log", "save", "-f", str(state)))  # -f: with the internal tree
    raw = state.read_bytes()
    assert b"$argon2id$" in raw
    assert PASSWORD.encode() not in raw
    assert PASSWORD not in srv.log()


def test_two_prompts_on_one_stdin(cli):
    """A new user's prompt and a login prompt, both answered on one
    standard input (the command's own prompts come first, the login's
    when the connection opens): the first must not swallow the second's
    line."""
    ok(cli("auth", "-m", "password", "user", "add", "name=root", "password=rootpw"))
    ok(cli("auth", "-m", "password", "init"))
    ok(cli("-a", "password name=root password?=Login", "auth", "-m", "password", "user", "add",
           "name=ann", "password?=New", input="annpw\nrootpw\n"), "")
    ok(cli("-a", "password name=ann password=annpw", "data", "list"))


def test_user_add_bad_input(cli):
    pw = "password=" + PASSWORD
    fails(cli("auth", "-m", "password", "user", "add", pw), 2, "missing name=USER")
    fails(cli("auth", "-m", "password", "user", "add", "name="), 2, "'name='")
    fails(cli("auth", "-m", "password", "user", "add", "name=joe", "pw=x"), 2, "'pw=x'")
    fails(cli("auth", "-m", "password", "user", "add", "name=joe"), 2,
          "a password user needs password= or password?=")
    fails(cli("auth", "-m", "password", "user", "add", "name=joe", pw, "password?=Code"), 2,
          "exclude each other")
    fails(cli("auth", "-m", "password", "user", "add", "name=joe", "password?=Code", input=""),
          1, "no answer for Code")
    fails(cli("auth", "-m", "password", "user", "add", "--aux", "acl", "name=joe", pw), 2,
          "--aux wants KEY=VALUE")
    fails(cli("auth", "-m", "root", "user", "add", "name=joe"), 1, "ServerError")
    fails(cli("auth", "-m", "_test", "user", "add", "name=joe", pw), 1, "ServerError")
    ok(cli("auth", "-m", "password", "user", "list"), "")
    ok(cli("auth", "-m", "password", "user", "add", "name=joe", pw))
    # an existing user is not replaced
    res = fails(cli("auth", "-m", "password", "user", "add", "name=joe", "password=other"), 1,
                "ServerError")
    no_secrets(res)
    ok(cli("auth", "-m", "password", "user", "list"), "joe\n")


def test_user_add_with_aux(cli):
    ok(cli("auth", "-m", "_test", "user", "add", "--aux", "acl=writeonly", "--aux", "x=",
           "name=joe"), "")
    get = ok(cli("auth", "-m", "_test", "user", "get", "joe"))
    assert dkvyaml.load(get.stdout) == {"ident": "joe", "aux": {"acl": "writeonly"}}


def test_user_modify(cli):
    ok(cli("auth", "-m", "_test", "user", "add", "name=joe"))
    ok(cli("auth", "user", "modify", "--aux", "acl=writeonly", "--aux", "codec=floatval",
           "name=joe"), "")
    get = lambda: dkvyaml.load(ok(cli("auth", "user", "get", "joe")).stdout)  # noqa: E731
    assert get() == {"ident": "joe", "aux": {"acl": "writeonly", "codec": "floatval"}}
    ok(cli("auth", "user", "modify", "--aux", "codec=", "name=joe"), "")
    assert get() == {"ident": "joe", "aux": {"acl": "writeonly"}}
    ok(cli("auth", "user", "modify", "--aux", "acl=other", "--aux", "acl=last", "name=joe"))
    assert get() == {"ident": "joe", "aux": {"acl": "last"}}
    fails(cli("auth", "user", "modify", "--aux", "acl=x", "name=bob"), 1, "ServerError")
    fails(cli("auth", "user", "modify", "--aux", "acl=x"), 2, "missing name=USER")


def test_password_change_keeps_aux(cli):
    ok(cli("auth", "-m", "password", "user", "add", "--aux", "acl=a", "name=joe",
           "password=" + PASSWORD))

    def stored_hash():
        dump = dkvyaml.load(ok(cli("internal", "dump", "auth", "password")).stdout)
        return dump["user"]["joe"]["_"]["password"]

    before = stored_hash()
    res = ok(cli("auth", "-m", "password", "user", "modify", "name=joe", "password?=New",
                 input="n3w-secret\n"), "")
    assert "n3w-secret" not in res.stdout + res.stderr
    after = stored_hash()
    assert after != before
    assert (after.decode() if isinstance(after, bytes) else after).startswith("$argon2id$")
    got = dkvyaml.load(ok(cli("auth", "-m", "password", "user", "get", "joe")).stdout)
    assert got == {"ident": "joe", "aux": {"acl": "a"}}


def test_user_get_and_delete(cli):
    ok(cli("auth", "-m", "_test", "user", "add", "name=joe"))
    ok(cli("auth", "-m", "_test", "user", "add", "name=ann"))
    assert sorted(ok(cli("auth", "-m", "_test", "user", "list")).stdout.split()) == [
        "ann", "joe"]
    fails(cli("auth", "-m", "_test", "user", "get", "bob"), 1, "ServerError")
    fails(cli("auth", "-m", "_test", "user", "get"), 2, "missing USER")
    fails(cli("auth", "-m", "_test", "user", "get", "a", "b"), 2, "unexpected argument 'b'")
    ok(cli("auth", "-m", "_test", "user", "delete", "joe"), "")
    ok(cli("auth", "-m", "_test", "user", "list"), "ann\n")
    fails(cli("auth", "-m", "_test", "user", "delete", "joe"), 1,
          "no user 'joe' (method _test)")
    fails(cli("auth", "-m", "_test", "user", "get", "joe"), 1, "ServerError")
    fails(cli("auth", "-m", "password", "user", "delete", "ann"), 1,
          "no user 'ann' (method password)")


def test_init_locks_out_who_has_not_logged_in(cli):
    ok(cli("auth", "-m", "_test", "user", "add", "name=joe"))
    ok(cli("auth", "-m", "_test", "init"), "")
    fails(cli("data", "get"), 1, "You need to log in using: _test")
    fails(cli("auth", "-m", "password", "init", "-s"), 1, "You need to log in using: _test")


def test_init_needs_users(cli):
    fails(cli("auth", "-m", "_test", "init"), 1, "ServerError")
    ok(cli("data", "get"))  # still no login needed


def test_init_refuses_a_second_method_unless_switching(cli):
    root = ("-a", "_test name=root")
    ok(cli("auth", "-m", "_test", "user", "add", "name=root"))
    ok(cli("auth", "-m", "_test", "init"), "")
    ok(cli(*root, "auth", "-m", "password", "user", "add", "name=joe",
           "password=" + PASSWORD))
    fails(cli(*root, "auth", "-m", "password", "init"), 1,
          "authorization is already set up (_test); use -s to switch")
    ok(cli(*root, "auth", "-m", "_test", "init"), "")  # the same method again: fine
    ok(cli(*root, "auth", "-m", "password", "init", "-s"),
       "Authorization switched to password\n")
    fails(cli(*root, "data", "get"), 1)
    joe = ("-a", "password name=joe password=" + PASSWORD)
    ok(cli(*joe, "auth", "user", "list"), "joe\n")  # the current method
    ok(cli(*joe, "auth", "-m", "root", "init", "-s"), "Authorization turned off.\n")
    ok(cli("data", "get"), "")


# ---- ACLs ----


def test_acl_set_get(cli):
    ok(cli("acl", "set", "writeonly", "-a", "xc", "wom", "#"), "")
    ok(cli("acl", "get", "writeonly", "wom", "#"), "xc\n")
    ok(cli("acl", "set", "writeonly", "-a", "+rx", "wom", "#"), "")
    ok(cli("acl", "get", "writeonly", "wom", "#"), "xcr\n")
    ok(cli("acl", "set", "writeonly", "-a", "-xd", "wom", "#"), "")
    ok(cli("acl", "get", "writeonly", "wom", "#"), "cr\n")
    ok(cli("acl", "set", "writeonly", "-a", "", "wom", "#"), "")  # an entry that allows nothing
    ok(cli("acl", "get", "writeonly", "wom", "#"), "\n")
    # options before the name, the ACL's root entry, wildcards and colon notation
    ok(cli("acl", "set", "-a", "rrx", "writeonly"), "")
    ok(cli("acl", "get", "writeonly"), "rx\n")
    ok(cli("acl", "set", "writeonly", "-a", "e", "--", "+", ":5", "-dash"), "")
    ok(cli("acl", "get", "writeonly", "+", ":5", "-dash"), "e\n")
    ok(cli("acl", "get", "writeonly", "no", "entry"), "")
    ok(cli("acl", "set", "writeonly", "-a", "-", "wom", "#"), "")
    ok(cli("acl", "get", "writeonly", "wom", "#"), "")


def test_acl_bad_input(cli):
    res = fails(cli("acl", "set", "w", "-a", "xqcQq", "wom"), 2,
                "unknown mode letters 'qQ' (known: arwcdxen)")
    assert res.stdout == ""
    fails(cli("acl", "set", "w", "-a", "+W", "wom"), 2, "unknown mode letters 'W'")
    fails(cli("acl", "set", "w", "-a", "+", "wom"), 2, "no mode letters to add")
    fails(cli("acl", "set", "w", "wom"), 2, "missing -a MODES")
    fails(cli("acl", "set", "-a", "r"), 2, "missing the ACL's NAME")
    fails(cli("acl", "set", "w", "-a", "r", ":zz"), 2, "bad path element ':zz'")
    fails(cli("acl", "get"), 2, "missing the ACL's NAME")
    ok(cli("acl", "set", "w", "-a", "r", "x"))
    fails(cli("acl", "set", "w", "-a", "-", "zz"), 1, "ACL w has no entry at zz")
    fails(cli("acl", "get", "nope", "a"), 1, "no ACL named 'nope'")
    fails(cli("acl", "dump", "nope"), 1, "no ACL named 'nope'")
    fails(cli("acl", "delete", "nope"), 1, "no ACL named 'nope'")
    fails(cli("acl", "delete", "nope", "a"), 1, "ACL nope has no entry at a")
    fails(cli("acl", "delete", "w", "zz"), 1, "ACL w has no entry at zz")
    fails(cli("acl", "test", "-a", "rw", "x"), 2, "one mode letter")
    fails(cli("acl", "test", "-a", "q", "x"), 2, "unknown mode letters 'q'")
    fails(cli("acl", "list", "x"), 2, "unexpected argument 'x'")


def test_acl_list_dump_delete(cli):
    ok(cli("acl", "list"), "")
    ok(cli("acl", "set", "writeonly", "-a", "xc", "wom", "#"))
    ok(cli("acl", "set", "writeonly", "-a", "rx", "pub"))
    ok(cli("acl", "set", "other", "-a", "r", "a", "b"))
    assert sorted(ok(cli("acl", "list")).stdout.splitlines()) == ["other", "writeonly"]
    assert dkvyaml.load(ok(cli("acl", "dump", "writeonly")).stdout) == {
        "wom": {"#": {"_": "xc"}}, "pub": {"_": "rx"}}
    assert dkvyaml.load(ok(cli("acl", "dump", "writeonly", "wom")).stdout) == {
        "#": {"_": "xc"}}
    ok(cli("acl", "delete", "writeonly", "wom", "#"), "")
    assert dkvyaml.load(ok(cli("acl", "dump", "writeonly")).stdout) == {"pub": {"_": "rx"}}
    ok(cli("acl", "delete", "other"), "")
    ok(cli("acl", "list"), "writeonly\n")
    fails(cli("acl", "dump", "other"), 1, "no ACL named 'other'")
    ok(cli("acl", "delete", "writeonly"), "")
    ok(cli("acl", "list"), "")
    assert "acl" not in (dkvyaml.load(ok(cli("internal", "dump")).stdout) or {})


def test_acl_test(cli):
    ok(cli("acl", "set", "writeonly", "-a", "xc", "wom", "#"))
    ok(cli("acl", "test", "-N", "writeonly", "-a", "w", "wom", "foo", "bar"), "-\n")
    ok(cli("acl", "test", "-N", "writeonly", "-a", "c", "wom", "foo", "bar"), "+\n")
    res = ok(cli("acl", "test", "-N", "writeonly", "wom", "foo"))
    assert sorted(res.stdout.strip()) == ["c", "x"]
    ok(cli("acl", "test", "-N", "writeonly", "elsewhere"), "-\n")
    ok(cli("acl", "test", "-N", "writeonly", "-a", "r", "elsewhere"), "-\n")
    # an unrestricted session may do everything
    ok(cli("acl", "test", "-a", "w", "wom", "foo"), "+\n")


def test_acl_test_as_a_bound_user(cli):
    ok(cli("acl", "set", "writeonly", "-a", "xc", "wom", "#"))
    ok(cli("auth", "-m", "_test", "user", "add", "--aux", "acl=writeonly", "name=joe"))
    ok(cli("auth", "-m", "_test", "user", "add", "name=root"))
    ok(cli("auth", "-m", "_test", "init"))
    joe = ("-a", "_test name=joe")
    ok(cli(*joe, "acl", "test", "-a", "c", "wom", "x"), "+\n")
    ok(cli(*joe, "acl", "test", "-a", "r", "wom", "x"), "-\n")
    # a bound user cannot touch ACLs or users
    fails(cli(*joe, "acl", "set", "writeonly", "-a", "rwx", "wom", "#"), 1,
          "does not allow access to internal data")
    fails(cli(*joe, "auth", "user", "list"), 1, "does not allow access to internal data")
    ok(cli("-a", "_test name=root", "acl", "get", "writeonly", "wom", "#"), "xc\n")


# ---- the tutorial ----


def tutorial(srv, steps):
    """Run each (line, stdin, status, stdout, stderr) in its own bash
    with `distkv` pointing at srv and the tutorial's shell functions; a
    line may define a function for the lines after it.  stdout/stderr
    None: not checked."""
    env = dict(os.environ, PATH=TOOLS + os.pathsep + os.environ.get("PATH", ""))
    prelude = ['distkv() { command distkv -C connect.port=%d "$@"; }' % srv.port,
               'dkd() { distkv client data "$@"; }']
    for line, stdin, status, out, err in steps:
        res = subprocess.run(["bash", "-c", "\n".join(prelude + [line])], input=stdin,
                             capture_output=True, text=True, env=env, timeout=60)
        assert res.returncode == status, (line, res.returncode, res.stdout, res.stderr)
        if out is not None:
            assert res.stdout == out, (line, res.stdout)
        if err is not None:
            assert res.stderr == err, (line, res.stderr)
        assert PASSWORD not in res.stdout + res.stderr, line
        if line.startswith("dkv()"):
            prelude.append(line)


def test_tutorial_password(srv):
    tutorial(srv, [
        ("distkv client auth -m password user add name=joe password?=Code",
         PASSWORD + "\n", 0, "", ""),
        # the tutorial shows no names here; ours lists the user
        ("distkv client auth -m password user list", None, 0, "joe\n", ""),
        ("distkv client auth -m password init -s", None, 0,
         "Authorization switched to password\n", ""),
        ("dkd get", None, 1, "",
         "ClientAuthRequiredError: You need to log in using: password\n"),
        ('distkv client -a "password name=joe password?=Code" data get', PASSWORD + "\n",
         0, "", None),
        ('distkv client -a "password name=joe password=test123" data get -rd_', None,
         0, None, None),
    ])


def test_tutorial_test_method_and_acls(srv):
    refused_w = "ServerError: ACL writeonly (wom #: xc) does not allow w\n"
    refused_r = "ServerError: ACL writeonly (wom #: xc) does not allow r\n"
    tutorial(srv, [
        ("distkv client auth -m _test user add name=joe", None, 0, "", ""),
        ("distkv client auth -m _test user add name=root", None, 0, "", ""),
        ("distkv client auth -m _test init", None, 0, "", ""),
        ("distkv client data get", None, 1, "",
         "ClientAuthRequiredError: You need to log in using: _test\n"),
        ('dkv() { distkv client -a "_test name=joe" "$@"; }', None, 0, "", ""),
        ("dkv data get", None, 0, "", ""),
        ("dkv acl set writeonly -a \"xc\" wom '#'", None, 0, "", ""),
        # not in the tutorial: Joe is bound to the ACL (from his next login on)
        ("dkv auth user modify --aux acl=writeonly name=joe", None, 0, "", ""),
        ("dkv data set -ev 42 wom foo bar", None, 0, "", ""),
        ("dkv data set -ev 43 wom foo bar", None, 1, "", refused_w),
        ("dkv data get wom foo", None, 1, "", refused_r),
        # "root" has no ACL and can unbind Joe again
        ('distkv client -a "_test name=root" auth user modify --aux acl= name=joe',
         None, 0, "", ""),
        # the codec section's user change
        ("dkv auth user modify --aux codec=floatval name=joe", None, 0, "", ""),
        ('distkv client -a "_test name=root" auth user get joe', None, 0,
         "ident: joe\naux:\n  codec: floatval\n", ""),
    ])
