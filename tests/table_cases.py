"""Optimizers made from the core's table alone (csrc/tables.h, exported as sdagd.optim.TABLE),
for the tests that walk every row: test_tables.py and test_cuda.py."""

from sdagd import optim

#: Values for the hyperparameters that have no default in the table (SGD's lr, SDAGD's radius,
#: SDLM's mu); an unknown required one gets 0.1.
REQUIRED = {"lr": 0.5, "radius": 0.3, "mu": 0.1}


def required_kwargs(name):
    """The keyword arguments that optimizer `name` cannot do without."""
    return {h["name"]: REQUIRED.get(h["name"], 0.1) for h in optim.TABLE[name]["hyperparameters"]
            if optim._required(h)}


def from_table(name):
    """Optimizer `name` of the table with its defaults (and the required ones above)."""
    return getattr(optim, name)(**required_kwargs(name))
