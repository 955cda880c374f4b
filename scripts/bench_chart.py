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
