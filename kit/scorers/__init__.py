"""How evaluation answers are scored beyond a substring match: LLM judges (`judge`: alignment, coherence, any
0-100 judge prompt), two-option TruthfulQA (`truthfulqa`) and the lettered multiple choice both share
(`multiple_choice`). The `scorer:` of an evaluation picks one; kit/stages/evaluate.py calls them."""
