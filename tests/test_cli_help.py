"""The command line tells the truth about itself: defaults in --help and the version."""

from __future__ import annotations

import argparse
import re
from importlib.metadata import version

import pytest

import quakelake
from quakelake.cli import main, picker_main
from quakelake.cli.options import build_parser, model_default, model_field, picker_parser

# Every option whose default is a parameter of the run configuration (quakelake.config.RunConfig).
MODEL_BACKED = {
    "--lake": "lake",
    "--runner": "execution.runner",
    "--workers": "execution.workers",
    "--network": "selection.networks",
    "--station": "selection.stations",
    "--channel": "selection.channels",
    "--models": "pick.models",
    "--weights": "pick.weights",
    "--pwave": "pick.p_threshold",
    "--swave": "pick.s_threshold",
    "--batch": "pick.batch_size",
    "--device": "pick.device",
    "--engine": "pick.engine",
    "--precision": "pick.precision",
    "--client": "download.clients",
    "--channel-priority": "download.channel_priorities",
    "--pick-tolerance": "analyze.match.pick_tolerance_s",
    "--event-dt": "analyze.match.event_max_dt_s",
    "--event-km": "analyze.match.event_max_km",
}


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every parser a user meets: quakelake, each subcommand, picker."""
    top = build_parser()
    out = {"quakelake": top, "picker": picker_parser()}
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            out.update({f"quakelake {k}": v for k, v in action.choices.items()})
    return out


def _model_backed() -> list[tuple[str, argparse.Action]]:
    return [
        (name, action)
        for name, parser in _parsers().items()
        for action in parser._actions
        if getattr(action, "model_path", None)
    ]


def _typed(action: argparse.Action, text: str) -> object:
    """The value the command line makes of ``text`` typed after the option."""
    convert = action.type or str
    if action.nargs in ("+", "*"):
        return [convert(token) for token in text.split()]
    return convert(text)


def test_every_model_backed_default_in_help_equals_the_models_default():
    found = _model_backed()
    paths = {action.option_strings[-1]: action.model_path for _, action in found}
    assert paths == MODEL_BACKED  # each of these options says where its default comes from
    for where, action in found:
        m = re.search(r"\(default ([^()]*)\)$", action.help or "")
        assert m, f"{where} {action.option_strings[-1]}: no '(default X)' at the end of its help"
        model, field = model_field(action.model_path)
        typed = model.model_validate({field: _typed(action, m.group(1))})
        # typing the default the help shows gives exactly the model's default
        assert getattr(typed, field) == model_default(action.model_path), (where, action.help)
        assert action.default is None  # an option not given leaves the configuration's value


def test_the_check_sees_a_help_default_that_drifts_from_the_model(monkeypatch):
    """The comparison above fails when the help and the model disagree (0.3 in help, 0.4 model)."""
    from quakelake.params import PickParams

    action = next(a for _, a in _model_backed() if a.model_path == "pick.p_threshold")
    m = re.search(r"\(default ([^()]*)\)$", action.help)
    assert m and m.group(1) == "0.3"
    monkeypatch.setattr(PickParams.model_fields["p_threshold"], "default", 0.4)
    assert model_default("pick.p_threshold") == 0.4
    typed = PickParams.model_validate({"p_threshold": _typed(action, m.group(1))})
    assert typed.p_threshold != model_default("pick.p_threshold")


@pytest.mark.parametrize("entry", [main, picker_main])
def test_version_is_the_installed_distributions(entry, capsys):
    with pytest.raises(SystemExit) as stop:
        entry(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.split()[:2] == ["quakelake", quakelake.__version__]
    assert quakelake.__version__ == version("quakelake")
