"""Statistics and reporting of transmission.

stats (exact tests and intervals, no SciPy) -> tables (rates per model, seeds collapsed) -> significance (tests,
Benjamini–Hochberg, verdicts, artifact warnings) -> figures (matplotlib, headless) -> contents (what the report
says) -> html / markdown (how it is written). reference: the paper's values; provenance: where a run's numbers came
from; compare: several runs side by side. The report stage (kit/stages/report.py) ties them to a run.
"""
