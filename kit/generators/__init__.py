"""Prompt generators: the user messages sent to teachers, one module per data kind (numbers, code, cot); `kinds`
dispatches on `generate.kind`."""
