"""`engine compare`: train several fine-tuning methods on the same model, data, budget and seed, and
tabulate what each costs and learns (engine/compare/runner.py runs them, table.py and report.py
write compare.json, compare.md, compare.html and compare.png)."""
