"""`jtm <stage> [--params params.yaml] [--set key=value ...]`: one subcommand per stage.

A thin shim: parse arguments, load and check params, call `jtm.runner.run_stage`. Bad input
or a bad params value exits with status 2 and a message naming the file (and row, or key);
nothing half-written is left behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path

from jtm.choices import LAYERS, POOLINGS
from jtm.config import ConfigError, get_dotted, load_params, validate_params
from jtm.errors import JtmError
from jtm.stages import STAGES


def _condition(stage, role: str) -> str:
    if role not in stage.input_when:
        return ""
    key, value = stage.input_when[role]
    return f" (read only when {key} is {value})"


def _stage_help(name: str) -> str:
    stage = STAGES[name]
    lines = [stage.summary, "", "inputs:"]
    lines += [
        f"  {role}: the path in params key {key}" + _condition(stage, role)
        for role, key in stage.inputs.items()
    ] or ["  (none)"]
    below = f", then /{stage.cell}" if stage.cell else ""
    lines += ["outputs:"]
    lines += [f"  {role}: the path in params key {key}{below}" for role, key in stage.outputs.items()]
    lines += ["params read (a change reruns this stage under DVC/Snakemake):"]
    lines += [f"  {key}" for key in stage.params]
    return "\n".join(lines)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a dotted params key, value parsed as YAML (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jtm", description="jtm: CPC music representations on MusicNet.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="<stage>")
    for name, stage in STAGES.items():
        sub = commands.add_parser(
            name,
            help=stage.summary,
            description=_stage_help(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        for item, key in stage.matrix.items():
            sub.add_argument(item, help=f"one of the values in params {key}")
        _add_common(sub)
    render = commands.add_parser(
        "render",
        help="Render any scores (files or folders of MusicXML, MIDI, kern) into a MusicNet-format corpus.",
        description="Render scores with a SoundFont into <out>/musicnet/... + <out>/musicnet_metadata.csv,\n"
        "using the demo.* params (seed, renderings, humanisation, soundfont) unless overridden.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    render.add_argument("scores", nargs="+", help="score files, folders, or music21 corpus paths")
    render.add_argument("--out", required=True, help="folder to write the corpus into")
    render.add_argument("--soundfont", help="GM SoundFont (.sf2/.sf3); default demo.soundfont")
    _add_common(render)
    validate = commands.add_parser(
        "validate",
        help="Check a MusicNet tree (layout, WAV headers, labels, counts) before any stage trusts it.",
    )
    validate.add_argument("path", help="folder holding musicnet/ and musicnet_metadata.csv")
    validate.add_argument("--all", action="store_true", help="report every problem instead of the first")
    validate.add_argument(
        "--subset", action="store_true", help="the tree is part of MusicNet: skip the counts"
    )
    _add_common(validate)
    features = commands.add_parser(
        "features",
        help="Embed any audio files with a trained model: frames, pooled vectors and their keys.",
        description="Cut every audio file under the paths (files, folders, globs; any format libsndfile\n"
        "reads) into windows of the model's length and write <out>/keys.parquet, files.parquet,\n"
        "frames.npy and pooled.npy (docs/own-audio.md, 'Features for your own audio').",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    features.add_argument("paths", nargs="+", help="audio files, folders or glob patterns")
    features.add_argument(
        "--model",
        help="a pretraining run's folder (default: <paths.pretrain>/run<r>, r the first of pretrain.runs)",
    )
    features.add_argument("--out", required=True, help="folder to write (must not exist, or be empty)")
    features.add_argument("--layer", choices=LAYERS, help="read-out (default: params embed.layer)")
    features.add_argument("--pooling", choices=POOLINGS, help="window vector (default: params embed.pooling)")
    features.add_argument("--hop", type=int, help="samples between windows (default: the model's window)")
    features.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    _add_common(features)
    survey = commands.add_parser(
        "survey",
        help="Digest the files ingest.corpora names (paths, sizes, times): DVC reruns ingest on a change.",
    )
    survey.add_argument("--out", help="JSON file to write (default: params paths.survey)")
    _add_common(survey)
    summary = commands.add_parser("summary", help="Print what the Parquet index holds and where.")
    _add_common(summary)
    commands.add_parser("schema", help="Print the JSON Schema params files are checked against.")
    return parser


def _empty_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise ConfigError(
            f"--out {out}: folder exists and is not empty; choose a new one (it would be replaced)"
        )


def _features(args: argparse.Namespace, params: dict) -> dict:
    from jtm.features.files import embed_files

    _empty_out(Path(args.out))
    return embed_files(
        args.paths,
        args.model
        or Path(get_dotted(params, "paths.pretrain")) / f"run{get_dotted(params, 'pretrain.runs')[0]}",
        args.out,
        layer=args.layer or get_dotted(params, "embed.layer"),
        pooling=args.pooling or get_dotted(params, "embed.pooling"),
        hop=args.hop,
        quality=get_dotted(params, "resample.quality"),
        batch_size=args.batch_size,
    )


def _survey(args: argparse.Namespace, params: dict) -> dict:
    from jtm.ingest.discover import corpora_from_params
    from jtm.ingest.listing import write_survey

    listing = write_survey(corpora_from_params(get_dotted(params, "ingest.corpora")), args.out)
    return {name: {"files": entry["files"], "bytes": entry["bytes"]} for name, entry in listing.items()}


def _render(args: argparse.Namespace, params: dict) -> dict:
    import dataclasses

    from jtm.config import DemoConfig, section
    from jtm.demo.render import render_corpus
    from jtm.demo.scores import extract_scores

    _empty_out(Path(args.out))
    cfg = section(params, "demo", DemoConfig)
    if args.soundfont:
        cfg = dataclasses.replace(cfg, soundfont=args.soundfont)
    scores, notes = extract_scores(
        args.scores, cfg.excerpt_seconds, cfg.default_bpm, cfg.workers, cfg.excerpts
    )
    return render_corpus(scores, notes, cfg, args.out, cfg.workers)


def main(argv: list[str] | None = None) -> int:
    """The `jtm` command; its exit status (2: bad input or params, 141: stdout closed early)."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit, where a closed pipe would print a traceback
        return code
    except BrokenPipeError:  # `jtm schema | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141  # 128 + SIGPIPE, as a shell reports a command a closed pipe stopped


def _main(argv: list[str] | None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.command == "schema":
        from jtm.config import params_schema

        print(json.dumps(params_schema(), indent=2))
        return 0
    try:
        params = load_params(args.params, args.overrides)
        validate_params(params, args.params)
        if args.command == "validate":
            from jtm.musicnet.validate import validate

            problems = validate(args.path, subset=args.subset, stop_at_first=not args.all)
            for problem in problems:
                print(f"jtm validate: {problem}", file=sys.stderr)
            if problems:
                print(f"jtm validate: {len(problems)} problem(s) in {args.path}", file=sys.stderr)
                return 2
            print(f"jtm validate: {args.path} is a sound MusicNet tree")
            return 0
        if args.command == "summary":
            from jtm.corpus.index import summarize

            print(summarize(get_dotted(params, "paths.index")))
            from jtm.train.pretrain import summarize_model

            models = Path(get_dotted(params, "paths.pretrain"))
            lines = [summarize_model(models / f"run{r}") for r in get_dotted(params, "pretrain.runs")]
            print("\n".join(line for line in lines if line) or "no CPC model yet")
            report = Path(get_dotted(params, "paths.report"))
            if report.is_file():
                print(f"Report: {report.resolve()} (Markdown: {get_dotted(params, 'paths.report_md')})")
            else:
                print("no report yet: run the pipeline to its end (make demo, or dvc repro)")
            from jtm.tracking import runs_page

            uri, page = get_dotted(params, "mlflow.tracking_uri"), runs_page(params["mlflow"])
            print(
                f"MLflow runs: mlflow ui --backend-store-uri {uri}" + (f", then open {page}" if page else "")
            )
            return 0
        writers = {"render": _render, "features": _features, "survey": _survey}  # commands that write --out
        if args.command == "survey":
            args.out = args.out or get_dotted(params, "paths.survey")
        if args.command in writers:
            metrics = writers[args.command](args, params)
            where = args.out
        else:
            from jtm.runner import run_stage, stage_paths

            stage = STAGES[args.command]
            item = {name: getattr(args, name) for name in stage.matrix}
            metrics = run_stage(args.command, params, item=item)
            where = ", ".join(str(path) for path in stage_paths(stage, params, item or None)[1].values())
    except JtmError as err:
        if isinstance(err, ConfigError):
            err = err.naming(args.params)
        print(f"jtm {args.command}: error: {err}", file=sys.stderr)
        return 2
    # Per-k curves are in metrics.json and MLflow; the console gets the headline figures.
    headline = {k: v for k, v in metrics.items() if not re.search(r"_k([2-9]|\d\d)$", k)}
    print(f"jtm {args.command}: wrote {where}: {json.dumps(headline, default=float)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
