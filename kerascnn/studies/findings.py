"""What a study found, in sentences computed from its numbers (never written by hand).

Arm studies compare mean test accuracies over seeds. A difference between
two arms counts as *larger than the seed spread* when it exceeds the
larger of the two arms' ranges (max - min test accuracy over their seeds);
with fewer than two seeds in either arm the spread is unknown and the
sentence says so. The rule is deliberately plain: with two or three seeds a
t-test says little more, and a reader can check it against the table.

Search studies (the grid) rank the trials by validation accuracy (the
tuner's objective) and measure each factor's effect as the difference
between the best and the worst mean test accuracy over its levels.
"""

import statistics


def pct(value):
    return "-" if value is None else f"{100 * value:.1f}%"


def points(value):
    return f"{100 * value:+.1f} points"


def compare(a, b):
    """'(larger than / within) the seed spread' clause for arm summaries `a` and `b` (a above b)."""
    d = a.test_mean - b.test_mean
    if a.test_range is None or b.test_range is None:
        return "the seed spread is unknown (fewer than two seeds), so this may be noise"
    spread = max(a.test_range, b.test_range)
    if d > spread:
        return f"larger than the seed spread ({100 * spread:.1f} points, the larger range over seeds)"
    return f"within the seed spread ({100 * spread:.1f} points, the larger range over seeds): not a clear difference"


def arm_findings(summaries, baseline=None):
    """Sentences about the arms that finished: winner, baseline comparisons, overfitting, cost."""
    done = [s for s in summaries if s.test_mean is not None]
    missing = [s for s in summaries if s.test_mean is None]
    found = []
    if not done:
        return ["No arm has finished yet: there is nothing to compare."]
    ranked = sorted(done, key=lambda s: -s.test_mean)
    best = ranked[0]
    if len(ranked) == 1:
        found.append(f"Only {best.label} finished: test accuracy {pct(best.test_mean)}.")
    else:
        second = ranked[1]
        found.append(
            f"{best.label} won with {pct(best.test_mean)} mean test accuracy over {best.seeds} seed"
            f"{'s' if best.seeds > 1 else ''}, {points(best.test_mean - second.test_mean)[1:]} above "
            f"{second.label} ({pct(second.test_mean)}): {compare(best, second)}."
        )
        worst = ranked[-1]
        if len(ranked) > 2:
            found.append(
                f"{worst.label} came last with {pct(worst.test_mean)}, "
                f"{points(best.test_mean - worst.test_mean)[1:]} below the winner: {compare(best, worst)}."
            )
    base = next((s for s in done if s.name == baseline), None)
    if base is not None:
        for s in done:
            if s is base or len(done) == 2:  # two arms: the first sentence compared them
                continue
            hi, lo = (s, base) if s.test_mean >= base.test_mean else (base, s)
            found.append(
                f"{s.label} against the baseline {base.label}: {points(s.test_mean - base.test_mean)} "
                f"({pct(s.test_mean)} vs {pct(base.test_mean)}), {compare(hi, lo)}."
            )
    gaps = [s for s in done if s.gap_mean is not None]
    if len(gaps) > 1:
        most = max(gaps, key=lambda s: s.gap_mean)
        least = min(gaps, key=lambda s: s.gap_mean)
        found.append(
            f"Overfitting (final training accuracy minus test accuracy) is largest for {most.label} "
            f"({points(most.gap_mean)}) and smallest for {least.label} ({points(least.gap_mean)})."
        )
    timed = [s for s in done if s.seconds_per_epoch]
    if len(timed) > 1:
        fast = min(timed, key=lambda s: s.seconds_per_epoch)
        slow = max(timed, key=lambda s: s.seconds_per_epoch)
        found.append(
            f"{slow.label} took {slow.seconds_per_epoch / fast.seconds_per_epoch:.1f}x as long per epoch as "
            f"{fast.label} ({slow.seconds_per_epoch:.1f} s vs {fast.seconds_per_epoch:.1f} s)."
        )
    sized = [s for s in done if s.params]
    if len(sized) > 1 and len({s.params for s in sized}) > 1:
        big = max(sized, key=lambda s: s.params)
        small = min(sized, key=lambda s: s.params)
        found.append(
            f"{big.label} has {big.params / small.params:.1f}x the parameters of {small.label} "
            f"({big.params:,} vs {small.params:,})."
        )
    if missing:
        found.append("Not finished, so not compared: " + ", ".join(s.label for s in missing) + ".")
    return found


def field_findings(fields):
    """Sentences about receptive fields: [(label, last map name, field pixels, image pixels)]."""
    if not fields:
        return []
    parts = [f"{label} {size:g} px ({layer})" for label, layer, size, _ in fields]
    widest = max(fields, key=lambda f: f[2])
    return [
        "Receptive field of the last spatial map (before the classifier): " + ", ".join(parts)
        + f"; {widest[0]}'s covers {min(widest[2] / widest[3], 1):.0%} of the {widest[3]}-pixel image side."
    ]


FACTORS = (("optimizer", "optimizer"), ("learning_rate", "learning rate"), ("batch_size", "batch size"),
           ("val_split", "validation split"), ("regularization", "regulariser"))


def search_findings(rows):
    """Sentences about a search's completed trials (dicts of `tuning.results.collect`)."""
    done = [r for r in rows if r.get("test_accuracy") is not None and r.get("best_val_accuracy") is not None]
    if not done:
        return ["No trial has finished yet: there is nothing to compare."]
    ranked = sorted(done, key=lambda r: -r["best_val_accuracy"])
    best = ranked[0]
    tests = [r["test_accuracy"] for r in done]
    found = [
        f"The best of {len(done)} trials by validation accuracy is trial {best['trial_id']} "
        f"({_describe(best)}): validation {pct(best['best_val_accuracy'])}, test {pct(best['test_accuracy'])}, "
        f"{points(best['test_accuracy'] - statistics.median(tests))} against the median trial's test accuracy "
        f"({pct(statistics.median(tests))})."
    ]
    top_test = max(done, key=lambda r: r["test_accuracy"])
    if top_test is not best:
        found.append(
            f"The highest test accuracy, {pct(top_test['test_accuracy'])}, is trial {top_test['trial_id']}'s "
            f"({_describe(top_test)}); the tuner chose by validation accuracy, as it must."
        )
    effects = []
    for key, name in FACTORS:
        levels = {}
        for r in done:
            levels.setdefault(r.get(key), []).append(r["test_accuracy"])
        if len(levels) < 2:
            continue
        means = {level: statistics.fmean(v) for level, v in levels.items()}
        top, bottom = max(means, key=means.get), min(means, key=means.get)
        effects.append((means[top] - means[bottom], name, top, bottom, means))
    for effect, name, top, bottom, means in sorted(effects, key=lambda e: -e[0]):
        found.append(
            f"{name.capitalize()}: mean test accuracy {pct(means[top])} with {top} against {pct(means[bottom])} "
            f"with {bottom} ({points(effect)[1:]} over {len(means)} levels)."
        )
    if effects:
        biggest = max(effects, key=lambda e: e[0])
        spread = statistics.stdev(tests) if len(tests) > 1 else 0.0
        found.append(
            f"The {biggest[1]} matters most; the standard deviation of test accuracy over all trials is "
            f"{100 * spread:.1f} points."
        )
    return found


def _describe(row):
    return (f"{row.get('optimizer')} lr {row.get('learning_rate'):g}, batch {row.get('batch_size')}, "
            f"validation split {row.get('val_split')}, {row.get('regularization')}")
