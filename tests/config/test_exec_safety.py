"""Config that the kernel could not exec is refused at load time, with its location."""

import pytest

from drover.config.errors import ConfigError
from drover.config.loader import load_files

APP = "applications:\n  shop:\n    hosts: ['*']\n    services:\n      web:\n{body}"


@pytest.mark.parametrize(
    ("body", "where", "phrase"),
    [
        ('        command: [x]\n        env: {"A=B": "1"}\n', "c.yaml:7:15", "A=B"),
        ('        command: ["a\\0b"]\n', "c.yaml:6:19", "NUL"),
        ('        command: [x]\n        env: {A: "1\\0"}\n', "c.yaml:7:18", "NUL"),
    ],
)
def test_what_exec_cannot_take_is_a_config_error(body: str, where: str, phrase: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_files({"c.yaml": APP.format(body=body).encode()}, "r")
    [problem] = caught.value.problems
    assert str(problem).startswith(where)
    assert phrase in str(problem)
