"""What a run tells its user: report.md (the table per molecule, the curve, where the budget went,
the ensemble's spread), report.json (the same numbers) and curve.png, beside the model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from foundation.files import replacing, write_json, write_text_atomic


def write(out: Path, settings: dict, molecules: Sequence, rounds: list[dict], spreads: dict,
          phases: dict[str, float], labelling: dict[str, float], spent: float) -> Path:
    last = rounds[-1]
    labels = {m.name: m.label for m in molecules}
    table = [{"molecule": name, "smiles": labels.get(name, name),
              "heldout": last["heldout"]["structures"].get(name, 0),
              "start_kcal_mol": last["start_heldout"]["molecules"].get(name),
              "after_kcal_mol": last["heldout"]["molecules"].get(name),
              "spread_start_kcal_mol": spreads["start"].get(name), "spread_after_kcal_mol": spreads["after"].get(name)}
             for name in labels]
    curve = [{"cpu_hours": 0.0, "heldout_kcal_mol": last["start_heldout"]["all"], "point": "start"}] + [
        {"cpu_hours": r["cpu_seconds"] / 3600, "heldout_kcal_mol": r["heldout"]["all"], "point": f"round {r['round']}"}
        for r in rounds]
    where = {**{f"labelling {fid}": s for fid, s in labelling.items()}, **phases}
    data = {"budget_cpu_hours": settings["budget_seconds"] / 3600, "spent_cpu_hours": spent / 3600,
            "start": settings["model"], "molecules": table, "curve": curve,
            "budget": {k: v / 3600 for k, v in where.items()}, "rounds": rounds,
            "heldout_start_kcal_mol": last["start_heldout"]["all"], "heldout_after_kcal_mol": last["heldout"]["all"]}
    write_json(out / "report.json", data)
    plotted = _plot(out / "curve.png", curve)
    write_text_atomic(out / "report.md", _markdown(data, plotted))
    return out / "report.md"


def _markdown(data: dict, plotted: bool) -> str:
    lines = [f"# foundation adapt: {data['start']} on your molecules", "",
             f"Held-out relative-energy RMSE against CCSD(T)/cc-pVDZ (kcal/mol; conformers never trained on): "
             f"**{data['heldout_start_kcal_mol']:.2f} → {data['heldout_after_kcal_mol']:.2f}**, for "
             f"{data['spent_cpu_hours']:.2f} of {data['budget_cpu_hours']:.2f} CPU-hours.", "",
             "| molecule | held out | start | adapted | ensemble spread, start → adapted |", "|---|---|---|---|---|"]
    for row in data["molecules"]:
        lines.append(f"| {row['smiles']} | {row['heldout']} | {_f(row['start_kcal_mol'])} | {_f(row['after_kcal_mol'])} "
                     f"| {_f(row['spread_start_kcal_mol'])} → {_f(row['spread_after_kcal_mol'])} |")
    lines += ["", "## Error against CPU time", ""]
    lines += ["![held-out error against CPU-hours](curve.png)", ""] if plotted else []
    lines += ["| CPU-hours | held-out RMSE (kcal/mol) | |", "|---|---|---|"]
    lines += [f"| {p['cpu_hours']:.3f} | {p['heldout_kcal_mol']:.2f} | {p['point']} |" for p in data["curve"]]
    lines += ["", "## Where the budget went", "", "| | CPU-hours |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in data["budget"].items()]
    lines += ["", "## Rounds", ""]
    for r in data["rounds"]:
        labels = ", ".join(f"{n} {fid}" for fid, n in r["train"].items())
        kept = f" (the start was kept: {r['reason']})" if r.get("kept_start") else ""
        if r.get("unchanged"):
            lines.append(f"- round {r['round']}: no new labels; the model of round {r['round'] - 1} stays")
        else:
            lines.append(f"- round {r['round']}: trained on {labels}; {r['steps']} steps{kept}")
    return "\n".join(lines) + "\n"


def _f(value) -> str:
    return "–" if value is None or value != value else f"{value:.2f}"


def _plot(path: Path, curve: list[dict]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([p["cpu_hours"] for p in curve], [p["heldout_kcal_mol"] for p in curve], "o-")
    for p in curve:
        ax.annotate(p["point"], (p["cpu_hours"], p["heldout_kcal_mol"]), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xlabel("CPU-hours spent")
    ax.set_ylabel("held-out rel. energy RMSE vs CCSD(T) (kcal/mol)")
    fig.tight_layout()
    with replacing(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return True
