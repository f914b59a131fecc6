"""Reading distkv's YAML output in tests: one loader for every suite.

distkv prints YAML 1.2 with a few tags of its own (doc/cli.md):
    !bin TEXT      a byte string whose bytes are printable text
    !hex 01:02     a byte string as hex pairs
    !!binary B64   a byte string as base64 (the standard tag)
    !P a:b         a path, kept here as ("P", "a:b")
Any other local tag `!x` is kept as ("x", data), so that a test sees it
rather than a loader error.
"""

import yaml


class Loader(yaml.SafeLoader):
    """SafeLoader plus distkv's tags (see the module's doc)."""


def _hex(text):
    return bytes.fromhex(text.replace(":", "").replace(" ", ""))


def _tagged(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        v = loader.construct_scalar(node)
        if suffix == "bin":
            return v.encode()
        if suffix == "hex":
            return _hex(v)
        return (suffix, v)
    if isinstance(node, yaml.SequenceNode):
        return (suffix, loader.construct_sequence(node))
    return (suffix, loader.construct_mapping(node))


Loader.add_multi_constructor("!", _tagged)


def load(text):
    """One YAML document."""
    return yaml.load(text, Loader=Loader)


def load_all(text):
    """Every document in text, as a list."""
    return list(yaml.load_all(text, Loader=Loader))
