"""What every lesson's widgets share: `Explorer`, sliders wired to a draw function.

Every widget here is thin: it wires sliders to a pure function of this package (which the tests
call directly) and redraws an image in an Output area. Each `make_...` returns a `Explorer`, whose
`.ui` is displayed in the notebook, whose `.controls` are the sliders, and whose `.render()` draws
the current state; tests set a control's value and check that the picture changed.

A widget needs a running kernel: on GitHub or nbviewer a saved notebook shows none of it. `show_explorer(explorer)`
displays the widget, draws its first state, and puts the same picture under it as a plain image, which the saved
notebook keeps for every reader.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import HTML, Image, display


@dataclass
class Explorer:
    """Sliders + an output area + a draw function. `last` holds what the last redraw computed, `picture` the
    PNG of the figure it drew (None if it drew none)."""

    controls: dict
    draw: Callable[..., object]  # draw(**values) -> anything worth keeping (images, numbers), and plots
    output: W.Output = field(default_factory=W.Output)
    last: object = None
    picture: bytes | None = None

    def __post_init__(self):
        for control in self.controls.values():
            control.observe(lambda change: self.render(), names="value")
        # a row wider than the notebook wraps, rather than squeezing each slider to a dot (lesson 5's five controls)
        row = W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap"))
        self.ui = W.VBox([row, self.output])

    def values(self) -> dict:
        return {name: c.value for name, c in self.controls.items()}

    def render(self):
        with self.output:
            self.output.clear_output(wait=True)
            before = set(plt.get_fignums())
            self.last = self.draw(**self.values())
            drawn = [n for n in plt.get_fignums() if n not in before]  # the figures this draw made
            self.picture = None
            if drawn:
                buffer = io.BytesIO()
                plt.figure(drawn[-1]).savefig(buffer, format="png", bbox_inches="tight")
                self.picture = buffer.getvalue()
            plt.show()
        return self.last


def show_explorer(explorer: Explorer) -> Explorer:
    """Display `explorer`'s widget, draw its first state, and show that picture again under it as a plain image:
    the saved notebook keeps it, so a reader without a kernel (GitHub, nbviewer) sees what the widget shows.
    The copy goes away when a control first changes. In a notebook: `widgets.show_explorer(make_..._explorer(...))`."""
    display(explorer.ui)
    explorer.render()
    if explorer.picture is None:
        return explorer
    copy = display(Image(data=explorer.picture, format="png"), display_id=True)
    dropped = False

    def drop_copy(change):  # once, though a control that sets another (lesson 5's model sets w) calls it twice
        nonlocal dropped
        if dropped:
            return
        dropped = True
        if copy is not None:
            copy.update(HTML(""))
        for control in explorer.controls.values():
            control.unobserve(drop_copy, names="value")

    for control in explorer.controls.values():
        control.observe(drop_copy, names="value")
    return explorer
