"""Every setting of the proxy-ranking proof side by side (issue 13, item 3), and the default proxy chosen on all of
them together rather than on the one it was first measured on.

    python benchmarks/search_settings.py

Reads each setting's own results (made by its benchmark) and writes ``settings`` and ``default_proxy`` into
``benchmarks/results/search_correlation.json``. A setting whose results are not there yet is listed as missing.
Per setting and proxy: Kendall τ with the setting's mean distilled accuracy and its 95 % bootstrap interval over
students, and top-1 regret (the true best's accuracy minus the proxy's pick's); per setting the seed ceiling (τ
between the rankings of two single training seeds: what a proxy can hope to reach there). A setting judges the
proxies only where its own training runs agree with each other (seed ceiling of at least ``MIN_CEILING``, measured
over two or more seeds); the others are listed, and left out of the choice.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from kdcompress.profiles import Search  # noqa: E402
from kdcompress.run import write_json  # noqa: E402

# Our threshold, not a published one: below it two training seeds rank the students too differently for any
# proxy's tau to mean much there.
MIN_CEILING = 0.5

# name -> (results file, its benchmark, what it is)
SETTINGS = {
    "band": ("search_correlation.json", "python benchmarks/search_correlation.py",
             ("24 students of three families (ResNet, MobileNetV2, VGG) in one 2-3 MFLOPs band, KD from the shipped "
              "ResNet teacher, 3 seeds")),
    "depth": ("depth_space.json", "python benchmarks/depth_space.py --inits random --seeds 0 1",
              ("the ResNet teacher's stem and widths, stage depths 1-4 (like DisWOT's S1), fresh init, KD from it; "
               "DisWOT's semantic term is defined here")),
    "vgg_teacher": ("search_correlation_vgg.json",
                    "python benchmarks/search_correlation.py --teacher teachers/fmnist_vgg.pt2 --scratch-seeds 0",
                    "the band's 24 students, KD from a VGG teacher (teachers/fmnist_vgg.pt2)"),
}


def setting_figures(r: dict) -> dict:
    """One setting's per-proxy τ, interval and regret, whichever benchmark wrote it."""
    proxies = {}
    for name, p in r["proxies"].items():
        proxies[name] = {"kendall_tau": p["kendall_tau"],
                         "interval95": p.get("kendall_tau_ci95", p.get("interval95")),
                         "top1_regret": p["top1_regret"]}
    students = r.get("fresh_students_scored", len(r.get("students", [])))
    return {"students": students, "seed_tau_ceiling": r.get("seed_tau_ceiling"),
            "kendall_tau": {k: v["kendall_tau"] for k, v in proxies.items()},
            "top1_regret": {k: v["top1_regret"] for k, v in proxies.items()}, "proxies": proxies}


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options; --help says what it does
    settings, missing = {}, {}
    for name, (file, command, what) in SETTINGS.items():
        path = RESULTS / file
        if not path.exists():
            missing[name] = f"{file} not made yet ({command})"
            continue
        settings[name] = {"what": what, "source": f"benchmarks/results/{file}", "command": command,
                          **setting_figures(json.loads(path.read_text()))}
    judging = {n: s for n, s in settings.items()
               if s["seed_tau_ceiling"] is not None and s["seed_tau_ceiling"] >= MIN_CEILING}
    unjudged = {n: "no seed ceiling yet (one seed trained)" if s["seed_tau_ceiling"] is None else
                f"seed ceiling {s['seed_tau_ceiling']:.2f} < {MIN_CEILING}"
                for n, s in settings.items() if n not in judging}
    # the proxies every judging setting scored, ranked by mean τ over them (the worst setting beside it)
    common = set.intersection(*(set(s["kendall_tau"]) for s in judging.values())) if judging else set()
    ranking = sorted(({"proxy": p,
                       "mean_kendall_tau": statistics.mean(s["kendall_tau"][p] for s in judging.values()),
                       "worst_kendall_tau": min(s["kendall_tau"][p] for s in judging.values()),
                       "mean_top1_regret": statistics.mean(s["top1_regret"][p] for s in judging.values())}
                      for p in common), key=lambda row: (-row["mean_kendall_tau"], row["proxy"]))
    shipped = Search.model_fields["proxy"].default
    default = {"judged_on": sorted(judging), "not_judging": unjudged, "missing": missing, "min_seed_ceiling": MIN_CEILING,
               "ranking": ranking, "shipped_default": shipped,
               "best_over_settings": ranking[0]["proxy"] if ranking else None,
               "note": "proxies scored in every judging setting, by mean Kendall tau over them; proxies "
                       "marked @trained score with the trained teacher; only settings whose seed ceiling reaches "
                       "min_seed_ceiling judge"}
    out = RESULTS / "search_correlation.json"
    result = json.loads(out.read_text())
    result["settings"], result["default_proxy"] = settings, default
    write_json(out, result)
    for name, s in settings.items():
        ceiling = s["seed_tau_ceiling"]
        print(f"{name}: {s['students']} students, seed ceiling "
              f"{'n/a' if ceiling is None else f'{ceiling:.2f}'}")
    print(f"{'proxy':28s} {'mean tau':>8s} {'worst':>6s} {'regret':>6s}   " + "  ".join(judging))
    for row in ranking:
        per = "  ".join(f"{judging[n]['kendall_tau'][row['proxy']]:+.2f}" for n in judging)
        print(f"{row['proxy']:28s} {row['mean_kendall_tau']:+8.2f} {row['worst_kendall_tau']:+6.2f} "
              f"{row['mean_top1_regret']:6.2f}   {per}")
    for name, why in {**missing, **unjudged}.items():
        print(f"not judging: {name}: {why}")
    print(f"shipped default {shipped}; best over {len(judging)} judging setting(s): {default['best_over_settings']}")


if __name__ == "__main__":
    main()
