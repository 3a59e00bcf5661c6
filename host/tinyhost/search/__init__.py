"""`tinyhost search` (docs/search.md): simulate.py (host training with the device's int8 numerics),
contrib.py (contribution analysis), memory.py (the compiler's figures), optimize.py (knapsack,
evolution), run.py (the whole search), report.py and plot.py (what it prints and draws)."""
