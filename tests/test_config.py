"""Configuration: defaults < file < command line; bad values name the parameter."""

from __future__ import annotations

import ast
import datetime as dt
import importlib
import json
from pathlib import Path

import pytest

from quakelake.cli import CliError, build_parser, load_config, parse_gregorian, parse_julian
from quakelake.config import ConfigError, build_config


def test_precedence_defaults_file_command_line(tmp_path):
    cfg_file = tmp_path / "run.json"
    cfg_file.write_text(json.dumps({"pick": {"p_threshold": 0.5, "batch_size": 64}, "lake": "L1"}))
    args = build_parser().parse_args(
        ["pick", "-c", str(cfg_file), "-p", "0.1", "-M", "PhaseNet", "EQTransformer"]
    )
    cfg = load_config(args)
    assert cfg.pick.p_threshold == 0.1  # command line beats file
    assert cfg.pick.batch_size == 64  # file beats default
    assert cfg.pick.s_threshold == 0.3  # default
    assert cfg.pick.models == ["PhaseNet", "EQTransformer"]
    assert str(cfg.lake) == "L1"


def test_yaml_file_and_wildcard_selection(tmp_path):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("selection:\n  channels: ['HH?', 'EH?']\n  stations: B*\n")
    cfg = build_config(cfg_file)
    assert cfg.selection.matches("PB", "B204", "", "EHZ")
    assert not cfg.selection.matches("PB", "B204", "", "HNZ")
    assert not cfg.selection.matches("UW", "SHW", "", "HHZ")


@pytest.mark.parametrize(
    "overrides, name",
    [
        ({"pick": {"p_threshold": 1.5}}, "pick.p_threshold"),
        ({"pick": {"device": "tpu"}}, "pick.device"),
        ({"window": {"start": "2020-10-02", "end": "2020-10-01"}}, "window"),
        ({"pick": {"batch": 3}}, "pick.batch"),
    ],
)
def test_bad_values_name_the_parameter(overrides, name):
    with pytest.raises(ConfigError) as err:
        build_config(None, overrides)
    assert f"'{name}" in str(err.value)


def test_bad_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_config(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json"):
        build_config(bad)


def test_gregorian_and_julian_days():
    assert parse_gregorian("980101") == dt.date(1998, 1, 1)
    assert parse_gregorian("201001") == dt.date(2020, 10, 1)
    assert parse_gregorian("2024-02-29") == dt.date(2024, 2, 29)
    assert parse_julian("24060") == dt.date(2024, 2, 29)
    assert parse_julian("98001") == dt.date(1998, 1, 1)
    assert parse_julian("2020275") == dt.date(2020, 10, 1)
    assert parse_julian("2020.366") == dt.date(2020, 12, 31)
    assert parse_julian("2023-365") == dt.date(2023, 12, 31)
    with pytest.raises(
        CliError, match="-J/--julian: '23366': day of year 366 is outside 1..365 of 2023"
    ):
        parse_julian("23366")
    with pytest.raises(CliError, match="YYDDD"):
        parse_julian("2020-10-01")
    with pytest.raises(CliError, match="YYMMDD"):
        parse_gregorian("20201301")


def test_dates_and_julian_are_mutually_exclusive(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "-D", "980101", "980110", "-J", "98001", "98010"])
    assert "not allowed with" in capsys.readouterr().err


# ------------------------------------------------------------------ one base of the settings models
SRC = Path(__file__).resolve().parents[1] / "src" / "quakelake"


def _settings_models() -> list[tuple[str, str]]:
    """Return (module, class) of every pydantic model in src/quakelake (Prefect blocks aside).

    Read from the source (no import at collection): a class counts when one of its bases is
    ``BaseModel``, ``ParamModel`` or another class found so.
    """
    classes: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("").parts
        if "blocks" in rel:
            continue
        module = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
                ]
                classes[f"{module}:{node.name}"] = (module, bases)
    models = {"BaseModel", "ParamModel"}
    found: set[str] = set()
    while True:
        new = {
            key for key, (_, bases) in classes.items() if key not in found and models & set(bases)
        }
        if not new:
            break
        found |= new
        models |= {key.split(":")[1] for key in new}
    return sorted(tuple(key.split(":")) for key in found if not key.endswith(":ParamModel"))


SETTINGS_MODELS = _settings_models()


def test_the_settings_models_are_found():
    names = {cls for _, cls in SETTINGS_MODELS}
    assert {"RunConfig", "PickParams", "PyOctoConfig", "MatchParams", "MagnitudeParams"} <= names
    assert {"SlurmSettings", "DownloadParams", "EnsembleParams", "TrainParams"} <= names


@pytest.mark.parametrize(("module", "name"), SETTINGS_MODELS, ids=[n for _, n in SETTINGS_MODELS])
def test_every_settings_model_refuses_an_unknown_field(module, name):
    """One base (quakelake.params.base.ParamModel): a misspelt setting is an error naming it."""
    from pydantic import ValidationError

    from quakelake.params.base import ParamModel

    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, ParamModel), (
        f"{module}.{name} does not derive from quakelake.params.base.ParamModel"
    )
    assert cls.model_config["extra"] == "forbid" and cls.model_config["validate_assignment"]
    with pytest.raises(ValidationError) as err:
        cls.model_validate({"no_such_setting": 1})
    refused = [e for e in err.value.errors() if e["type"] == "extra_forbidden"]
    assert [e["loc"] for e in refused] == [("no_such_setting",)]
