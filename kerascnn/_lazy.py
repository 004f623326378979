"""Lazy public names for a package: `__getattr__` that imports on first use (PEP 562).

`import kerascnn` must stay cheap: the command line's `--help` and the
analysis of a config.json need no TensorFlow. A package lists its public
names and the module each lives in; the module is imported when the name
is first read.
"""

import importlib


def lazy_exports(package, names):
    """(`__getattr__`, `__dir__`) for `package` exporting `names` {public name: "module[:attribute]"}.

    "module" alone exports the module itself (a subpackage); "module:attribute"
    exports that attribute of the module (attribute defaults to the public name).
    """

    def __getattr__(name):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = names[name].partition(":")
        value = importlib.import_module(module)
        if attribute or module.rsplit(".", 1)[-1] != name:
            value = getattr(value, attribute or name)
        return value

    def __dir__():
        return sorted(names)

    return __getattr__, __dir__
