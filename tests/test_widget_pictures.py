"""widgets.show_explorer: a widget with a plain picture of its first state under it (for readers of the saved
notebook, who see no widget without a kernel), gone when a control first changes."""

import ipywidgets as W
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from diffusionlab.widgets import common  # noqa: E402


def explorer_drawing(figure: bool = True):
    def draw(level):
        if figure:
            plt.figure(figsize=(1, 1))
            plt.imshow([[level, 0], [0, level]], vmin=0, vmax=10)
        else:
            print("nothing to draw yet")
        return level

    return common.Explorer({"level": W.IntSlider(value=3, min=0, max=10)}, draw)


class Recorder:
    """Stands in for IPython's display: records what is shown and the updates of display handles."""

    def __init__(self):
        self.shown, self.updates = [], []

    def __call__(self, obj, display_id=None):
        self.shown.append(obj)
        if display_id:
            recorder = self

            class Handle:
                def update(self, new):
                    recorder.updates.append(new)

            return Handle()


def test_render_keeps_a_png_of_the_figure_it_drew():
    explorer = explorer_drawing()
    explorer.render()
    assert explorer.picture.startswith(b"\x89PNG")
    first = explorer.picture
    explorer.controls["level"].value = 9
    assert explorer.picture.startswith(b"\x89PNG") and explorer.picture != first


def test_show_explorer_puts_the_first_picture_under_the_widget_until_a_control_changes(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(common, "display", recorder)
    explorer = explorer_drawing()
    assert common.show_explorer(explorer) is explorer
    ui, picture = recorder.shown
    assert ui is explorer.ui
    assert picture.data == explorer.picture and picture.format == "png"
    explorer.controls["level"].value = 5
    explorer.controls["level"].value = 6
    assert len(recorder.updates) == 1 and recorder.updates[0].data == ""


def test_show_explorer_without_a_figure_shows_only_the_widget(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(common, "display", recorder)
    explorer = explorer_drawing(figure=False)
    common.show_explorer(explorer)
    assert recorder.shown == [explorer.ui] and explorer.picture is None


def test_show_explorer_when_a_control_sets_another(monkeypatch):
    """Lesson 5's model dropdown sets the guidance slider to the model's own default: one change of the first
    control fires the second's observers inside its own. The picture must still go once, without an error (it
    raised ValueError: list.remove(x), taking its observer off a second time)."""
    recorder = Recorder()
    monkeypatch.setattr(common, "display", recorder)
    model, guidance = W.Dropdown(options=["flow", "reflow"], value="flow"), W.FloatSlider(value=1.5, max=6)
    defaults = {"flow": 1.5, "reflow": 1.0}
    model.observe(lambda change: setattr(guidance, "value", defaults[change["new"]]), names="value")

    def draw(model, guidance):
        plt.figure(figsize=(1, 1))
        plt.title(f"{model}, w = {guidance}")
        return model, guidance

    explorer = common.show_explorer(common.Explorer({"model": model, "guidance": guidance}, draw))
    model.value = "reflow"
    assert explorer.last == ("reflow", 1.0)
    assert len(recorder.updates) == 1 and recorder.updates[0].data == ""
    model.value = "flow"
    assert explorer.last == ("flow", 1.5) and len(recorder.updates) == 1
