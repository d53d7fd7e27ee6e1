"""What every lesson's widgets share: `Explorer`, sliders wired to a draw function.

Every widget here is thin: it wires sliders to a pure function of this package (which the tests
call directly) and redraws an image in an Output area. Each `make_...` returns a `Explorer`, whose
`.ui` is displayed in the notebook, whose `.controls` are the sliders, and whose `.render()` draws
the current state; tests set a control's value and check that the picture changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import ipywidgets as W
import matplotlib.pyplot as plt


@dataclass
class Explorer:
    """Sliders + an output area + a draw function. `last` holds what the last redraw computed."""

    controls: dict
    draw: Callable[..., object]  # draw(**values) -> anything worth keeping (images, numbers), and plots
    output: W.Output = field(default_factory=W.Output)
    last: object = None

    def __post_init__(self):
        for control in self.controls.values():
            control.observe(lambda change: self.render(), names="value")
        self.ui = W.VBox([W.HBox(list(self.controls.values())), self.output])

    def values(self) -> dict:
        return {name: c.value for name, c in self.controls.items()}

    def render(self):
        with self.output:
            self.output.clear_output(wait=True)
            self.last = self.draw(**self.values())
            plt.show()
        return self.last
