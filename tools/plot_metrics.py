#!/usr/bin/env python3
"""Draw the loss curves of training runs from their metrics.jsonl, for those who would rather
look than read.

  .venv/bin/python tools/plot_metrics.py out-shakespeare-char-cpu out-baby --output losses.png

Each argument is a training out_dir (the file read is OUT_DIR/metrics.jsonl) or a
metrics.jsonl itself. The PNG has two panels: the training loss of every logged iteration
(`iter` records, `loss`) and the validation loss of every evaluation (`eval` records,
`val_loss`), one line per run in the same colour in both. A run resumed into the same
out_dir appends to its metrics.jsonl; an iteration logged twice is drawn with its last
record. A loss written as null (NaN) leaves a gap.

Needs matplotlib (in the project's venv: tools/setup.sh --tests). Exit status 1 with a message naming the file
and line for a missing or malformed metrics.jsonl.
"""

import argparse
import json
import math
import os
import sys


class MetricsError(Exception):
    pass


def metrics_path(path):
    """OUT_DIR/metrics.jsonl for a folder, the path itself for a file."""
    return os.path.join(path, "metrics.jsonl") if os.path.isdir(path) else path


def _number(record, key, where):
    value = record.get(key)
    if value is None and key in record:
        return math.nan  # the trainer writes a NaN loss as null
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MetricsError(f"{where}: '{record.get('kind')}' record needs a number for '{key}', got {value!r}")
    return float(value)


def read_metrics(path):
    """The iter and eval records of one metrics.jsonl: {"iters": {iter: record}, "evals": {iter: record}},
    where an iter record has "loss" (and, as written by the trainer, "ms", "tokens_per_s", the
    peak memory fields) and an eval record "train_loss" and "val_loss"."""
    if not os.path.exists(path):
        raise MetricsError(f"{path}: not found (give a training out_dir or its metrics.jsonl)")
    iters, evals = {}, {}
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            where = f"{path}:{number}"
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise MetricsError(f"{where}: not valid JSON ({error.msg} at column {error.pos + 1})") from None
            if not isinstance(record, dict) or "kind" not in record:
                raise MetricsError(f"{where}: expected a JSON object with a 'kind', got {line.strip()[:80]}")
            if record["kind"] not in ("iter", "eval"):
                continue  # records this tool does not draw
            iter_num = record.get("iter")
            if isinstance(iter_num, bool) or not isinstance(iter_num, int):
                raise MetricsError(f"{where}: '{record['kind']}' record needs an integer 'iter', got {iter_num!r}")
            if record["kind"] == "iter":
                iters[iter_num] = dict(record, loss=_number(record, "loss", where))
            else:
                evals[iter_num] = dict(record, train_loss=_number(record, "train_loss", where),
                                       val_loss=_number(record, "val_loss", where))
    if not iters and not evals:
        raise MetricsError(f"{path}: no 'iter' or 'eval' records")
    return {"iters": iters, "evals": evals}


def draw_loss_curves(ax_train, ax_val, runs):
    """runs: [(label, {"iters": {iter: {"loss"}}, "evals": {iter: {"val_loss"}}})], one colour each;
    dashes differ too, so that runs with equal losses stay visible on top of each other."""
    from matplotlib.ticker import MaxNLocator
    dashes = ["-", "--", ":", "-."]
    for k, (label, run) in enumerate(runs):
        style = {"color": f"C{k % 10}", "linestyle": dashes[k % len(dashes)], "linewidth": 1.4, "label": label}
        steps = sorted(run["iters"])
        ax_train.plot(steps, [run["iters"][i]["loss"] for i in steps], **style)
        steps = sorted(run["evals"])
        if steps:
            ax_val.plot(steps, [run["evals"][i]["val_loss"] for i in steps], marker="o", markersize=4, **style)
    ax_train.set_title("train loss (logged iterations)")
    ax_val.set_title("val loss (evaluations)")
    for ax in (ax_train, ax_val):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        ax.grid(True, alpha=0.3)
        _keep_readable_limits(ax)
    ax_train.legend(fontsize="small")
    if any(run["evals"] for _, run in runs):
        ax_val.legend(fontsize="small")
    else:
        ax_val.text(0.5, 0.5, "no evaluations", ha="center", va="center", transform=ax_val.transAxes)


def _keep_readable_limits(ax):
    """A single evaluation, or losses equal to 1e-6, would zoom an axis to nothing."""
    low, high = ax.get_xlim()
    if high - low < 2:
        middle = (low + high) / 2
        ax.set_xlim(middle - 1, middle + 1)
    low, high = ax.get_ylim()
    if high - low < 0.02:
        middle = (low + high) / 2
        ax.set_ylim(middle - 0.01, middle + 0.01)


def import_pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MetricsError("matplotlib is needed to draw (tools/setup.sh --tests installs it into .venv/)") from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    return plt


def plot_runs(paths, output, title=None):
    runs = [(path.rstrip("/"), read_metrics(metrics_path(path))) for path in paths]
    plt = import_pyplot()
    fig, (ax_train, ax_val) = plt.subplots(1, 2, figsize=(12, 4.5))
    draw_loss_curves(ax_train, ax_val, runs)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Draw train and val loss curves of metrics.jsonl files to a PNG.")
    parser.add_argument("runs", nargs="+", metavar="OUT_DIR", help="training out_dir or metrics.jsonl (one or more)")
    parser.add_argument("--output", "-o", default="loss_curves.png", help="PNG to write (default: %(default)s)")
    parser.add_argument("--title", help="title above the panels")
    args = parser.parse_args(argv)
    try:
        plot_runs(args.runs, args.output, args.title)
    except MetricsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
