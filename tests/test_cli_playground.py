"""`diffusionlab playground [--port P]`: Voila on localhost with notebooks/playground.ipynb, the address printed."""

import importlib.util
import subprocess

import pytest

from diffusionlab import cli


def test_playground_serves_the_notebook_on_localhost_and_prints_the_address(monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(subprocess, "run", lambda cmd, check=False: ran.append(cmd))
    assert cli.main(["playground", "--port", "8899"]) == 0
    assert "http://localhost:8899/" in capsys.readouterr().out
    cmd = ran[0]
    assert cmd[1:3] == ["-m", "voila"] and cmd[3].endswith("notebooks/playground.ipynb")
    assert "--port=8899" in cmd and "--Voila.ip=127.0.0.1" in cmd and "--no-browser" in cmd


def test_playground_without_voila_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert cli.main(["playground"]) == 2
    assert ".[app]" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_playground_refuses_a_bad_port(port, capsys):
    with pytest.raises(SystemExit):
        cli.main(["playground", "--port", port])
    assert "port" in capsys.readouterr().err
