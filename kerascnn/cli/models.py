"""`list`: the registered models with a short description."""

from kerascnn.cli import flags


def add_parsers(sub):
    flags.add_command(sub, "list", cmd_list)


def cmd_list(args):
    """registered models with a short description and their training recipes"""
    from kerascnn.models import list_models, model_description
    from kerascnn.recipes import default_recipe, recipes_for

    names = list_models()
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {model_description(name)}")
        for recipe in recipes_for(name).values():
            default = " (default)" if recipe.name == default_recipe(name) else ""
            print(f"{'':<{width}}    --recipe {recipe.describe()}{default}")
    return 0
