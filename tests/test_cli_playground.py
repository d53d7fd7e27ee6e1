"""`diffusionlab playground [--port P]`: Voila on localhost with notebooks/playground.ipynb, the address printed."""

import importlib.util
import socket
import subprocess

import pytest

from diffusionlab import cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_playground_serves_the_notebook_on_localhost_and_prints_the_address(monkeypatch, capsys):
    ran, port = [], _free_port()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(subprocess, "run", lambda cmd, check=False: ran.append(cmd))
    assert cli.main(["playground", "--port", str(port)]) == 0
    assert f"http://localhost:{port}/" in capsys.readouterr().out
    cmd = ran[0]
    assert cmd[1:3] == ["-m", "voila"] and cmd[3].endswith("notebooks/playground.ipynb")
    assert f"--port={port}" in cmd and "--Voila.ip=127.0.0.1" in cmd and "--no-browser" in cmd
    assert "--Voila.port_retries=0" in cmd  # never served at another address than the one printed


def test_a_port_in_use_is_refused_before_voila_starts(monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(subprocess, "run", lambda cmd, check=False: ran.append(cmd))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert cli.main(["playground", "--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert f"port {port} is in use" in captured.err and "--port" in captured.err
    assert not ran and "http://" not in captured.out


def test_playground_without_voila_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert cli.main(["playground"]) == 2
    assert ".[app]" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_playground_refuses_a_bad_port(port, capsys):
    with pytest.raises(SystemExit):
        cli.main(["playground", "--port", port])
    assert "port" in capsys.readouterr().err
