"""`list`: the registered models with a short description."""

from kerascnn.cli import flags


def add_parsers(sub):
    flags.add_command(sub, "list", cmd_list)


def cmd_list(args):
    """registered models with a short description, their training recipes and what each measured"""
    from kerascnn.models import list_models, model_description
    from kerascnn.recipe_results import measured
    from kerascnn.recipes import default_recipe, recipes_for

    names = list_models()
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {model_description(name)}")
        for recipe in recipes_for(name).values():
            default = " (default)" if recipe.name == default_recipe(name) else ""
            print(f"{'':<{width}}    --recipe {recipe.describe()}{default}")
            evidence = measured(name, recipe.name)
            if evidence:
                print(f"{'':<{width}}      measured: {evidence}")
    return 0
