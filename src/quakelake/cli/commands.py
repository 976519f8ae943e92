"""The commands that run flows: pick, run, associate, download, analyze, demo, train.

Each ``cmd_*`` takes the parsed options and returns the exit status; the flows hold the work.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quakelake.cli.checks import (
    check_device,
    check_inputs,
    check_lake,
    check_reference,
    check_station_file,
    check_token_file,
)
from quakelake.cli.options import CliError, parse_gregorian
from quakelake.cli.printing import (
    print_analysis,
    print_association,
    print_card,
    print_download,
    print_summary,
    warn,
)
from quakelake.cli.settings import (
    check_ensemble,
    checked_groups,
    lake_groups,
    load_config,
    refuse_unavailable,
    station_overlap,
)
from quakelake.cli.startup import (
    install_log_filter,
    preload,
    quiet_prefect,
    report_timing,
    stage_modules,
    use_warm_workers,
)
from quakelake.errors import (
    EXIT_FAILED_WORK,
    EXIT_OK,
)

if TYPE_CHECKING:
    from quakelake.config import RunConfig


def _say_nothing_to_do(cfg: RunConfig, units: str, inputs: str) -> None:
    """With -v: say that the lake already holds ``units`` computed from the same ``inputs``."""
    if cfg.verbosity > 1:
        print(
            f"nothing to do: {units} is in the lake with the same {inputs} "
            "(no flow run; --force recomputes)",
            file=sys.stderr,
        )


def cmd_pick(args: argparse.Namespace) -> int:
    """Run the pick flow."""
    refuse_unavailable(args)
    cfg = load_config(args)
    if cfg.directory is None:
        raise CliError("-d/--directory: give the folder with the raw waveforms to pick")
    if not cfg.directory.is_dir():
        raise CliError(
            f"-d/--directory: {cfg.directory} is not a folder; give the waveform archive"
        )
    for w in check_inputs(cfg, args):
        warn(w)
    groups = checked_groups(cfg)
    check_ensemble(cfg, trained=getattr(args, "train", False))
    if getattr(args, "train", False):  # the first work: after every check
        cfg = fine_tune_before_picking(args, cfg)
    elif not cfg.force and cfg.ensemble is None:
        t0 = time.perf_counter()
        done = _nothing_to_pick(cfg, groups)
        if done is not None:
            print_summary(done, cfg.lake)
            report_timing(cfg, {"pick: nothing to do": time.perf_counter() - t0}, t0, flow=False)
            return EXIT_OK
    quiet_prefect(cfg)
    cfg = use_warm_workers(cfg)
    t0 = time.perf_counter()
    from quakelake.flows.pick import pick_run
    from quakelake.flows.runners import make_task_runner

    install_log_filter(cfg.verbosity)
    summary = pick_run(cfg, make_task_runner(cfg.execution), groups)
    print_summary(summary, cfg.lake)
    report_timing(cfg, {f"pick: {k}": v for k, v in summary["seconds"].items()}, t0)
    return exit_status(summary)


def _nothing_to_pick(cfg: RunConfig, groups: dict[str, list[str]]) -> dict | None:
    """Return the summary of a pick run that finds every unit in the lake, before Prefect starts.

    An unchanged rerun is answered from the lake's ledger and the archive's headers alone: no
    flow run, nothing written (``--force`` recomputes). Anything to do returns None: the flow runs.
    """
    from quakelake.picking.plan import nothing_to_do

    summary = nothing_to_do(
        cfg.directory, cfg.lake, cfg.window, cfg.selection, cfg.pick, groups or None
    )
    if summary is not None:
        _say_nothing_to_do(cfg, "every station-day x model/weights", "waveforms and settings")
    return summary


def exit_status(*summaries: dict | list | None) -> int:
    """Return 1 when any stage summary counts a failed unit, else 0 (lists hold one per run)."""
    flat: list[dict] = []
    for s in summaries:
        if isinstance(s, list):
            flat.extend(x for x in s if isinstance(x, dict))
        elif isinstance(s, dict):
            flat.append(s)
    return EXIT_FAILED_WORK if any(int(s.get("failed", 0) or 0) > 0 for s in flat) else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole available pipeline on a small real data set into the lake."""
    from quakelake.cli import demo

    reference_files = args.reference_file
    args.reference_file = None  # handled by the demo, not by the configuration
    cfg = load_config(args)
    check_lake(cfg.lake)
    check_station_file(cfg.station_file)
    quiet_prefect(cfg)
    return demo.run_demo(args.data, cfg, reference_files)


def train_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the training options given on the command line (None: not given)."""
    return {
        "reference": getattr(args, "reference", None),
        "labels": getattr(args, "labels", None),
        "min_probability": getattr(args, "min_probability", None),
        "holdout_stations": getattr(args, "holdout_stations", None),
        "holdout_days": [parse_gregorian(d, "--holdout-days") for d in args.holdout_days]
        if getattr(args, "holdout_days", None)
        else None,
        "name": getattr(args, "name", None),
        "epochs": getattr(args, "epochs", None),
        "learning_rate": getattr(args, "learning_rate", None),
        "batch_size": getattr(args, "batch", None)
        if getattr(args, "command", "") == "train"
        else None,
        "window_s": getattr(args, "window", None),
        "seed": getattr(args, "seed", None),
        "device": getattr(args, "device", None),
        "min_snr_db": getattr(args, "min_snr", None),
        "noise_margin_s": getattr(args, "noise_margin", None),
    }


def fine_tune_before_picking(args: argparse.Namespace, cfg: RunConfig) -> RunConfig:
    """-T/--train: fine-tune the first model x weights; return ``cfg`` with the new weights in the grid."""
    from quakelake.picking.training import fine_tune_for_picking

    card, cfg = fine_tune_for_picking(cfg, train_options(args))
    print_card(card)
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    """Fine-tune a picker, or train a denoiser, on the archive and the lake's labelled picks."""
    from quakelake.config import build_config
    from quakelake.picking import denoise, training

    cfg = load_config(args)
    if cfg.directory is None or not cfg.directory.is_dir():
        raise CliError("-d/--directory: give the waveform archive to cut training windows from")
    check_lake(cfg.lake)
    check_device(getattr(args, "device", None))
    if getattr(args, "labels", None) != "picks":
        check_reference(cfg)  # a name the lake does not hold, before any window is cut
    given = train_options(args)
    if args.denoiser:
        if args.models and args.models[0] != "SeisDAE":
            raise CliError(f"-M/--models: a denoiser is trained as SeisDAE, not {args.models[0]!r}")
        values = training.label_defaults(given, cfg.analyze.reference)
        fields = denoise.DenoiserTrainParams.model_fields
        params = build_config(
            None,
            {k: v for k, v in values.items() if k in fields},
            model=denoise.DenoiserTrainParams,
        )
        card = denoise.train_denoiser(cfg.lake, cfg.directory, params, cfg.selection, cfg.window)
        print_card(card)
        print(f"  denoise before picking with --denoiser {card['model']}/{card['name']}")
        return 0
    params = training.train_params(
        given,
        (args.models or ["PhaseNet"])[0],
        (args.weights or ["original"])[0],
        cfg.analyze.reference,
    )
    card = training.train_picker(
        cfg.lake, cfg.directory, params, selection=cfg.selection, days=cfg.window
    )
    print_card(card)
    print(f"  pick with -M {card['model']} -W {card['name']}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the pipeline: [download ->] pick [-> associate] [-> analyze] for a date range."""
    refuse_unavailable(args)
    cfg = load_config(args)
    if cfg.directory is None:
        raise CliError(
            "-d/--directory: give the waveform archive (the download target with --download)"
        )
    if cfg.download is None and not cfg.directory.is_dir():
        raise CliError(
            f"-d/--directory: {cfg.directory} is not a folder (add --download to fill it)"
        )
    if cfg.download is not None and (cfg.window.start is None or cfg.window.end is None):
        raise CliError("--download needs a date range: give -D/--dates or -J/--julian")
    if getattr(args, "interactive", False):
        from quakelake.analysis.plotting import require_display

        require_display("--interactive")
    for w in check_inputs(cfg, args):
        warn(w)
    checked_groups(cfg)
    check_ensemble(cfg, trained=getattr(args, "train", False))
    pick_answer = None  # the pick stage's summary when every pick unit is in the lake
    if getattr(args, "train", False):  # the first work: after every check
        cfg = fine_tune_before_picking(args, cfg)
    elif not getattr(args, "interactive", False):
        t0 = time.perf_counter()
        from quakelake.picking.plan import run_pick_answer

        pick_answer = run_pick_answer(cfg)
        done = _nothing_to_run(cfg, pick_answer) if pick_answer is not None else None
        if done is not None:
            print_summary(done["pick"], cfg.lake)
            for summary in done.get("associate", []):
                print_association(summary, cfg.lake, cfg.window)
            report_timing(cfg, {"run: nothing to do": time.perf_counter() - t0}, t0, flow=False)
            return station_overlap(cfg, done.get("associate", []))
    quiet_prefect(cfg)
    cfg = use_warm_workers(cfg)
    t0 = time.perf_counter()
    from quakelake.flows.pipeline import run_pipeline

    install_log_filter(cfg.verbosity)
    preload(stage_modules(cfg))  # GaMMA's and ObsPy's imports while the pick stage runs
    # the pick answer found above is not asked again (an archive scan and lake queries)
    out = run_pipeline(cfg, pick_answer=pick_answer)
    stages: dict[str, float] = {}
    if "download" in out:
        print_download(out["download"])
        stages.update({f"download: {k}": v for k, v in out["download"].get("seconds", {}).items()})
    print_summary(out["pick"], cfg.lake)
    stages.update({f"pick: {k}": v for k, v in out["pick"]["seconds"].items()})
    for summary in out.get("associate", []):
        print_association(summary, cfg.lake, cfg.window)
        stages[f"associate: {summary['pick_source']}"] = float(summary.get("seconds", 0.0))
    if cfg.associate is not None and not out.get("associate"):
        warn("association skipped: no station coordinates (pass -F/--file stations.xml|csv)")
    if "analyze" in out:
        print_analysis(out["analyze"], out["analyze"].get("lake") or cfg.lake)
        if "seconds" in out["analyze"]:
            stages["analyze"] = float(out["analyze"]["seconds"])
    if "seconds" in out:
        stages.update({f"{k} (stage)": v for k, v in out["seconds"].items()})
    report_timing(cfg, stages, t0)
    if getattr(args, "interactive", False):
        from quakelake.analysis.plotting import show_one_by_one
        from quakelake.analysis.review import station_day_views

        shown = show_one_by_one(
            station_day_views(
                cfg.lake, cfg.directory, cfg.window, cfg.selection, cfg.pick, cfg.analyze.reference
            )
        )
        print(f"reviewed {shown} instrument-days")
    status = exit_status(out.get("download"), out.get("pick"), out.get("associate"))
    if status:
        print(
            'error: some units failed (see the failed counts above and `quakelake sql "SELECT * FROM units '
            "WHERE status = 'failed'\"`); run the same command again to retry them",
            file=sys.stderr,
        )
        return status
    if partial_status(out.get("download")):
        return EXIT_FAILED_WORK
    if out.get("analyze", {}).get("warnings"):
        return 1  # nothing of the reference compared
    return station_overlap(cfg, out.get("associate", []))


def _nothing_to_run(cfg: RunConfig, pick: dict) -> dict | None:
    """Return the stage summaries of a pipeline run that finds nothing to do, before Prefect starts.

    ``pick``: the pick stage's summary (every unit committed); every association must have
    nothing to do too (an analysis always runs the flow); None: the pipeline flow runs.
    """
    from quakelake.association.plan import pipeline_nothing_to_do

    done = pipeline_nothing_to_do(cfg, pick)
    if done is not None:
        _say_nothing_to_do(cfg, "every pick unit and association day", "inputs and settings")
    return done


def cmd_associate(args: argparse.Namespace) -> int:
    """Associate picks into events (lake picks of each model x weights, or an external pick table)."""
    refuse_unavailable(args)
    cfg = load_config(args)
    if cfg.associate is None:
        raise CliError(
            "-c/--config: the configuration disables association (associate: null); remove that "
            "to associate"
        )
    if args.picks is not None and not args.picks.is_file():
        raise CliError(f"--picks: {args.picks} is not a file")
    if args.picks is not None and cfg.station_file is None:
        raise CliError("--picks needs station coordinates: give -F/--file stations.xml|csv")
    check_lake(cfg.lake)
    check_station_file(cfg.station_file)
    velocity = getattr(args, "velocity_model", None)
    if velocity is not None and not Path(velocity).is_file():
        raise CliError(
            f"--velocity-model: {velocity} does not exist; pass a TauP .nd, VELEST .mod or CSV file"
        )
    groups = lake_groups(cfg, check=args.picks is None)
    from quakelake.lakehouse import Lake, queries

    sources: list[tuple[str | None, str | None]] = [(None, None)]
    if args.picks is None and Lake(cfg.lake).has_files("picks"):
        combos = queries.pick_sets(Lake(cfg.lake))
        sources = [
            (m, w)
            for m, w in combos.itertuples(index=False)
            if (not args.models or m in args.models) and (not args.weights or w in args.weights)
        ]
        if not sources:
            held = ", ".join(f"{m}/{w}" for m, w in combos.itertuples(index=False))
            raise CliError(
                f"-M/--models, -W/--weights: no picks of {' '.join(args.models or ['any'])} x "
                f"{' '.join(args.weights or ['any'])} in lake {cfg.lake} (it holds {held})"
            )
    if not cfg.force and args.quakeml is None and args.export is None:
        t0 = time.perf_counter()
        done = _nothing_to_associate(cfg, args.picks, sources, groups)
        if done is not None:
            for summary in done:
                print_association(summary, cfg.lake, cfg.window)
            report_timing(
                cfg, {"associate: nothing to do": time.perf_counter() - t0}, t0, flow=False
            )
            return max(exit_status(*done), station_overlap(cfg, done) if args.picks is None else 0)
    quiet_prefect(cfg)
    t0 = time.perf_counter()
    from quakelake.catalogs.export import export_run
    from quakelake.flows.associate import associate_events
    from quakelake.flows.runners import stage_runner

    install_log_filter(cfg.verbosity)
    # Threads in this process unless execution.associate_on says the runner.
    flow_fn = associate_events.with_options(task_runner=stage_runner("associate", cfg.execution))
    summaries = []
    for model, weights in sources:
        for group, patterns in groups.items() if groups else [(None, None)]:
            summary = flow_fn(
                cfg.lake,
                cfg.window,
                cfg.associate,
                picks_file=args.picks,
                station_file=cfg.station_file,
                model=model,
                weights=weights,
                force=cfg.force,
                group=group,
                group_stations=patterns,
                magnitude=cfg.magnitude,
            )
            print_association(summary, cfg.lake, cfg.window)
            for line in export_run(cfg.lake, summary["run_id"], args.quakeml, args.export):
                print(line)
            summaries.append(summary)
    stages: dict[str, float] = {}
    for s in summaries:
        key = f"associate: {s.get('pick_source') or 'picks'}"
        stages[key] = stages.get(key, 0.0) + float(s.get("seconds", 0.0))
    report_timing(cfg, stages, t0)
    return max(
        exit_status(*summaries), station_overlap(cfg, summaries) if args.picks is None else 0
    )


def _nothing_to_associate(
    cfg: RunConfig,
    picks_file: Path | None,
    sources: list[tuple[str | None, str | None]],
    groups: dict[str, list[str]],
) -> list[dict] | None:
    """Return the summaries of associate runs that find every day in the lake, before Prefect starts.

    One per pick set x group, as the flows would run; None as soon as one of them has work
    (:func:`quakelake.association.plan.nothing_to_do`): then every flow runs, as before.
    """
    from quakelake.association.plan import given_response_files, nothing_to_associate

    responses = given_response_files(None, cfg.station_file)
    summaries = nothing_to_associate(cfg, sources, groups, picks_file, responses)
    if summaries is None:
        return None
    _say_nothing_to_do(cfg, "every day", "picks, stations and settings")
    return summaries


def cmd_download(args: argparse.Namespace) -> int:
    """Download waveforms and station metadata into an SDS archive."""
    cfg = load_config(args)
    if cfg.directory is None:
        raise CliError("-d/--directory: give the archive folder to download into")
    if cfg.window.start is None or cfg.window.end is None:
        raise CliError("-D/--dates: download needs a date range: give -D/--dates or -J/--julian")
    if cfg.directory.exists() and not cfg.directory.is_dir():
        raise CliError(
            f"-d/--directory: {cfg.directory} is a file; give the archive folder to download into"
        )
    check_lake(cfg.lake)
    check_token_file(cfg)
    quiet_prefect(cfg)
    t0 = time.perf_counter()
    from quakelake.flows.download import download_waveforms
    from quakelake.flows.runners import stage_runner

    # Downloads run in this process whatever --runner says: compute nodes have no internet.
    install_log_filter(cfg.verbosity)
    flow_fn = download_waveforms.with_options(task_runner=stage_runner("download", cfg.execution))
    summary = flow_fn(cfg.directory, cfg.lake, cfg.window, cfg.selection, cfg.download, cfg.force)
    print_download(summary)
    report_timing(cfg, {f"download: {k}": v for k, v in summary.get("seconds", {}).items()}, t0)
    status = exit_status(summary)
    if status:
        print(
            f"error: {summary['failed']} of {summary['units']} station-days failed to download (see the "
            "`downloads` table); run the same command again to retry them",
            file=sys.stderr,
        )
        return status
    return partial_status(summary)


def partial_status(summary: dict | None) -> int:
    """Return 1 with one ``error:`` line naming the partial station-days of a download, else 0.

    A partial unit is not a failed one (what arrived is in the archive, its gap in the ledger),
    but the archive is incomplete: a cron job must notice, and the next run fetches the gap.
    """
    partial = sorted(summary.get("gaps") or {}) if summary else []
    if not summary or not partial:
        return EXIT_OK
    shown = ", ".join(partial[:5]) + (f" and {len(partial) - 5} more" if len(partial) > 5 else "")
    print(
        f"error: {len(partial)} of {summary['units']} station-days downloaded only in part "
        f"({shown}; the gaps are in the `downloads` table); run the same command again to "
        "fetch the missing parts",
        file=sys.stderr,
    )
    return EXIT_FAILED_WORK


def cmd_analyze(args: argparse.Namespace) -> int:
    """Compare the lake's picks and events with a reference catalogue."""
    cfg = load_config(args)
    if not cfg.analyze.reference:
        raise CliError(
            "--reference NAME: the reference catalogue to compare with (see import-catalog)"
        )
    check_lake(cfg.lake, must_exist=not cfg.analyze.reference_paths)
    check_reference(cfg)
    if getattr(args, "interactive", False):
        from quakelake.analysis.plotting import require_display

        require_display("--interactive")
    groups = lake_groups(cfg)
    quiet_prefect(cfg)
    t0 = time.perf_counter()
    from quakelake.flows.analyze import analyze_run
    from quakelake.flows.runners import stage_runner
    from quakelake.params.evaluation import RunSelection

    install_log_filter(cfg.verbosity)
    selection = RunSelection(
        run_ids=args.run_id or [],
        models=args.models or [],
        weights=args.weights or [],
        associators=args.associator or [],
    )
    if Path(cfg.lake).is_dir():
        from quakelake.analysis.compare import check_selection
        from quakelake.lakehouse import Lake

        check_selection(Lake(cfg.lake), selection)  # unknown names: exit 2 with the known ones
    flow_fn = analyze_run.with_options(task_runner=stage_runner("analyze", cfg.execution))
    summary = flow_fn(
        cfg.lake,
        cfg.analyze.reference,
        selection,
        cfg.analyze.match,
        reference_paths=cfg.analyze.reference_paths or None,
        report_dir=cfg.analyze.report_dir,
        groups=groups or None,
    )
    print_analysis(summary, summary.get("lake") or cfg.lake)
    report_timing(cfg, {"analyze": time.perf_counter() - t0}, t0)
    if getattr(args, "interactive", False):
        show_images(list((summary.get("figures") or {}).values()))
    return 1 if summary.get("warnings") else 0  # nothing of the reference was compared


def show_images(paths: list[str]) -> int:
    """Show PNG files one after another, each window blocking until it is closed."""
    import matplotlib.pyplot as plt

    from quakelake.analysis.plotting import show_one_by_one

    def figures():
        for path in paths:
            fig, ax = plt.subplots(figsize=(10, 7))
            ax.imshow(plt.imread(path))
            ax.set_axis_off()
            ax.set_title(Path(path).stem)
            yield fig

    return show_one_by_one(figures())
