"""Completion filters: keep-or-reject rules applied to teacher completions, one module per data kind (numbers, code,
cot); `judged` sends the judged steps through the cached sampling layer."""
