from .gillespie import *  # noqa
