"""The version comes from meson.build alone; the "nixl" logger is set up as the reference's."""
import os
import re
import subprocess
import sys

import pytest

import nixl
import nixl._bindings as nb


def test_version_is_meson_project_version():
    want = os.environ.get("NIXL_MESON_VERSION")
    if not want:
        pytest.skip("NIXL_MESON_VERSION is set by meson test")
    # nixl.__version__ is the library's nixl_version(), which is nixl_version.h's, generated
    # from project() in meson.build
    assert nixl.__version__ == want
    assert nb.LIBRARY_VERSION == want


def run_logged(level=None, code=None):
    code = code or ("from nixl.logging import get_logger\n"
                    "log = get_logger('_api')\n"
                    "log.debug('d-line'); log.info('i-line'); log.warning('w-line')\n")
    env = {k: v for k, v in os.environ.items() if k != "NIXL_LOG_LEVEL"}
    if level is not None:
        env["NIXL_LOG_LEVEL"] = level
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return p


def test_logger_defaults_to_info_on_stdout():
    p = run_logged()
    assert p.stderr == ""
    lines = p.stdout.splitlines()
    assert len(lines) == 2, p.stdout
    # the reference's format: date time NIXL LEVEL(7) file:line message
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d NIXL INFO    <string>:3 i-line", lines[0])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d NIXL WARNING <string>:3 w-line",
                        lines[1])


@pytest.mark.parametrize("level,shown", [("WARN", ["w-line"]), ("error", []),
                                         ("DEBUG", ["d-line", "i-line", "w-line"]),
                                         ("TRACE", ["d-line", "i-line", "w-line"])])
def test_nixl_log_level_overrides(level, shown):
    p = run_logged(level)
    assert [ln.split()[-1] for ln in p.stdout.splitlines()] == shown


def test_bad_log_level_keeps_info():
    p = run_logged("LOUD")
    lines = p.stdout.splitlines()
    assert "NIXL_LOG_LEVEL='LOUD' is not a log level" in lines[0]
    assert [ln.split()[-1] for ln in lines[1:]] == ["i-line", "w-line"]


def test_logger_tree():
    from nixl.logging import get_logger
    assert get_logger("_api").name == "nixl.api"
    assert get_logger("nixl._api").name == "nixl._api"
    root = get_logger("nixl")
    assert not root.propagate and len(root.handlers) == 1
    assert root.handlers[0].stream is sys.stdout or "stdout" in repr(root.handlers[0].stream)


def test_agent_reports_at_info():
    """As with the reference, creating an agent says so at INFO (the C library stays quiet)."""
    code = ("from nixl._api import nixl_agent, nixl_agent_config\n"
            "nixl_agent('loud', nixl_agent_config(backends=[]))\n")
    p = run_logged(code=code)
    assert "NIXL INFO" in p.stdout and "loud" in p.stdout
    assert p.stderr == ""
