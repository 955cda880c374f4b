"""A clustered bar chart of a bench section's medians (gnuplot, PNG), shared
by the sections' report scripts."""
import subprocess
import sys
from pathlib import Path


def bar_chart(out: Path, title: str, columns: list[str], rows: list[tuple[str, list[float]]]) -> bool:
    """Draws OUT/results.png: one cluster per row (its label, then one value
    per column), one bar colour per column. Returns False (and says why) if
    gnuplot failed."""
    data = out / "results.dat"
    with data.open("w") as f:
        f.write("label " + " ".join(c.replace(" ", "_") for c in columns) + "\n")
        for label, values in rows:
            f.write(label + " " + " ".join(str(v) for v in values) + "\n")
    plots = [f"'{data}' using 2:xtic(1) title '{columns[0]}'"] + \
        [f"'' using {i + 2} title '{c}'" for i, c in enumerate(columns) if i > 0]
    script = f"""
set terminal pngcairo size 900,500 noenhanced
set output '{out / 'results.png'}'
set title '{title}'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top right
set yrange [0:*]
plot {', '.join(plots)}
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"PNG chart not drawn: {e}", file=sys.stderr)
        return False
    return True


def line_panels(out: Path, title: str, panels: list[tuple[str, str, list[tuple[str, list[tuple[float, float]]]]]]) -> bool:
    """Draws OUT/results.png: a grid of line charts over packet size (log 2
    x axis), one per panel (its title, its y label, then one series per
    line: a name and (x, y) points). Returns False (and says why) if gnuplot
    failed."""
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    script = [
        f"set terminal pngcairo size {600 * cols},{420 * rows} noenhanced",
        f"set output '{out / 'results.png'}'",
        f"set multiplot layout {rows},{cols} title '{title}'",
        "set logscale x 2", "set xlabel 'packet size (bytes)'", "set yrange [0:*]",
        "set key top left", "set grid",
    ]
    for k, (ptitle, ylabel, series) in enumerate(panels):
        data = out / f"results-{k}.dat"
        with data.open("w") as f:
            for name, points in series:
                f.write(f"# {name}\n")
                for x, y in points:
                    f.write(f"{x} {y}\n")
                f.write("\n\n")
        plots = [f"'{data}' index {i} using 1:2 with linespoints title '{name}'" for i, (name, _) in enumerate(series)]
        script += [f"set title '{ptitle}'", f"set ylabel '{ylabel}'", "plot " + ", ".join(plots)]
    script.append("unset multiplot")
    try:
        subprocess.run(["gnuplot"], input="\n".join(script) + "\n", text=True, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"PNG chart not drawn: {e}", file=sys.stderr)
        return False
    return True
