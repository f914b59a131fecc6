#!/usr/bin/python3
"""Write the seed corpus of the text parsers' fuzz target (corpus-text/).

Each seed is text as a person types it: path words in the colon notation
(doc/cli.md), whole paths as YAML's !P writes them, and YAML values as
they are written to a `_` file (doc/filesystem.md), the odd and the
wrong included.  Run with /usr/bin/python3 after changing it and commit
its output.
"""
import pathlib

OUT = pathlib.Path(__file__).resolve().parent / "corpus-text"

SEEDS = {
    # one path element
    "word": "hello",
    "empty_elem": ":e",
    "colon_string": "::text",
    "literal_string": ":=_",
    "bools_none": ":t",
    "int": ":123",
    "int_neg_hex": ":-0x1f",
    "bigint": ":123456789012345678901234567890",
    "float": ":1.5e3",
    "float_inf": ":-inf",
    "bytes_v": ":vabc def",
    "bytes_hex": ":y00ff10",
    "utf8_hex": ":uc3a9",
    "tuple": ":(a,:1,:(b,:t),:n)",
    "tuple_bad": ":(a,:(b",
    "control_char": "a\x01b",
    "fs_name": ".hidden",
    # whole paths
    "path": "a.b.:5",
    "path_dot_in_elem": "a:.b.c",
    "path_root": ":",
    "path_empty_elem": "a..b",
    "path_colons": "a::.:(x,:2).::",
    # YAML values
    "yaml_int": "42\n",
    "yaml_string_on": "ON\n",
    "yaml_quoted": "'42'\n",
    "yaml_null": "null\n",
    "yaml_map": "a: 1\nb: [x, 2]\n",
    "yaml_nested": "a:\n  b:\n  - 1\n  - {c: d, e: [.inf, -.inf, .nan]}\n",
    "yaml_bin": "!bin abc\n",
    "yaml_hex": "!hex 00:ff\n",
    "yaml_binary": "!!binary |\n  AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\n",
    "yaml_binary_bad": "!!binary AAE=\n",
    "yaml_path": "!P a.b.:5\n",
    "yaml_ints": "[0x1f, 0o17, -0, 18446744073709551616, -9223372036854775809]\n",
    "yaml_floats": "[1e3, 2.0, -1.5e-300, 1e400]\n",
    "yaml_stream": "---\n1\n---\nfoo\n...\n",
    "yaml_anchor": "a: &x [1, 2]\nb: *x\n",
    "yaml_complex_key": "? [1, 2]\n: x\n",
    "yaml_literal_block": "|\n  line one\n  line two\n",
    "yaml_bad_indent": "a:\n b: 1\n  c: 2\n",
    "yaml_unknown_tag": "!foo bar\n",
    "yaml_dup_keys": "a: 1\na: 2\n",
    "yaml_deep": "[" * 200 + "]" * 200 + "\n",
    "yaml_empty": "",
    "yaml_utf8_bad": "\xff\xfe\n",
}


def main():
    OUT.mkdir(exist_ok=True)
    for name, text in SEEDS.items():
        (OUT / name).write_bytes(text.encode("utf-8", "surrogateescape")
                                 if not any(ord(c) > 0x7f and ord(c) < 0x100 for c in text)
                                 else text.encode("latin-1"))


if __name__ == "__main__":
    main()
