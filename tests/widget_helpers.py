"""Driving a widget explorer headlessly, as the widget tests of lessons 3-8 do."""

import torch


def changes(explorer, name, value, key=None):
    """Set control `name` to `value` (its observer redraws): did the result (or result[key]) change?"""
    before = explorer.render()
    explorer.controls[name].value = value  # the observer redraws
    after = explorer.last
    pick = (lambda r: r[key]) if key else (lambda r: r)
    return before is not after and not torch.equal(pick(before), pick(after))
