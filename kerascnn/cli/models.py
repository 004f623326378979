"""`list`: the registered models with a short description."""

from kerascnn.cli import flags


def add_parsers(sub):
    flags.add_command(sub, "list", cmd_list)


def cmd_list(args):
    """registered models with a short description"""
    from kerascnn.models import list_models, model_description

    names = list_models()
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {model_description(name)}")
    return 0
