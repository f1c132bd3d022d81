"""Learning-rate schedules for the loop. They are defined, with their configs, in udlc.spec.schedules (pure
Python): `lr_factor` gives the factor of each step, `Plateau` the scale a plateau schedule adds."""

from udlc.spec.schedules import PlateauScale as Plateau
from udlc.spec.schedules import lr_factor

__all__ = ["Plateau", "lr_factor"]
